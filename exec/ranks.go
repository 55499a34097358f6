package exec

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fluxkit/fluxkit/idset"
)

// maxRanks bounds a decoded rank list so that a hostile "0-2147483647"
// cannot allocate gigabytes: the launcher expands rank sets into lists.
const maxRanks = 1 << 20

// parseRanks decodes an RFC 22 idset ("2-3,5,7", brackets allowed) into a
// sorted list of ranks.
func parseRanks(s string) ([]uint32, error) {
	set, err := idset.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, err
	}
	if set.Len() > maxRanks {
		return nil, fmt.Errorf("idset %q: more than %d ids", s, maxRanks)
	}
	out := make([]uint32, 0, set.Len())
	for id := range set.All() {
		out = append(out, id)
	}
	return out, nil
}

// formatRanks encodes ranks (in any order, duplicates allowed) as an RFC 22
// idset with ranges.
func formatRanks(ranks []uint32) string {
	return idset.Of(ranks...).String()
}

func sortRanks(r []uint32) { slices.Sort(r) }
