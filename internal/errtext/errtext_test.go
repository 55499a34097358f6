package errtext

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestShortenKeepsShortInputsAndCutsLongOnes(t *testing.T) {
	assert.Equal(t, "", Shorten(""))
	exact := strings.Repeat("x", MaxQuoted)
	assert.Equal(t, exact, Shorten(exact))
	assert.Equal(t, exact+"...", Shorten(exact+"yz"))
}
