package modprobe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxkit/fluxkit/kvs"
)

// fakeShape is a [fake-resources] table.
type fakeShape struct {
	nodes, cores, gpus int
	prefix, xml, amend string
}

// parseFakeShape reads the [fake-resources] table with flux-core's
// defaults (64 cores and no GPU per node, hosts fake0...).
func parseFakeShape(v any) (fakeShape, error) {
	tbl, ok := v.(map[string]any)
	if !ok {
		return fakeShape{}, fmt.Errorf("[fake-resources] must be a table, got %s", describe(v))
	}
	if _, ok := tbl["nnodes"]; !ok {
		return fakeShape{}, errors.New("[fake-resources] table requires the 'nnodes' key")
	}
	f := fakeShape{cores: 64, prefix: "fake"}
	for _, k := range []struct {
		key string
		min int
		dst *int
	}{{"nnodes", 1, &f.nodes}, {"cores-per-node", 1, &f.cores}, {"gpus-per-node", 0, &f.gpus}} {
		v, ok := tbl[k.key]
		if !ok {
			continue
		}
		n, err := asInt(k.key, v)
		if err == nil && n < k.min {
			err = fmt.Errorf("key %s: must be at least %d, got %d", k.key, k.min, n)
		}
		if err != nil {
			return fakeShape{}, fmt.Errorf("[fake-resources] %w", err)
		}
		*k.dst = n
	}
	for _, k := range []struct {
		key string
		dst *string
	}{{"host-prefix", &f.prefix}, {"hwloc-xml-path", &f.xml}, {"amend-r", &f.amend}} {
		if v, ok := tbl[k.key]; ok {
			s, err := asString(k.key, v)
			if err != nil {
				return fakeShape{}, fmt.Errorf("[fake-resources] %w", err)
			}
			*k.dst = s
		}
	}
	return f, nil
}

// idRange is the RFC 22 idset 0..n-1.
func idRange(n int) string {
	if n == 1 {
		return "0"
	}
	return fmt.Sprintf("0-%d", n-1)
}

// encodeArgs is the flux R encode command line for the shape: from the
// counts, or replicating the hwloc XML's machine on every node.
func (f fakeShape) encodeArgs() []string {
	hosts := fmt.Sprintf("%s[0-%d]", f.prefix, f.nodes-1)
	if f.xml != "" {
		if f.nodes == 1 {
			hosts = f.prefix + "0"
		}
		return []string{"flux", "R", "encode", "--xml=" + f.xml, "-r", idRange(f.nodes), "-H", hosts}
	}
	args := []string{"flux", "R", "encode", "-r" + idRange(f.nodes), "-H" + hosts, "-c", idRange(f.cores)}
	if f.gpus > 0 {
		args = append(args, "-g", idRange(f.gpus))
	}
	return args
}

// amendProgram runs a [fake-resources] amend-r amender (flux-core's
// load_amender forms) over R read from stdin: argv is SPEC [XMLFILE].
const amendProgram = `import json, sys
from flux.testing.fake_resources import load_amender
try:
    amend = load_amender(sys.argv[1])
except RuntimeError as exc:
    sys.exit(str(exc))
xml = None
if len(sys.argv) > 2:
    with open(sys.argv[2]) as f:
        xml = f.read()
json.dump(amend(json.load(sys.stdin), hwloc_xml=xml), sys.stdout)
`

// fakeResources writes synthetic R, described by the [fake-resources]
// config table, to resource.R, and has the resource module trust it
// (noverify, monitor-force-up) instead of the host's topology.
func fakeResources(ctx context.Context, c *Context) error {
	v, ok, err := c.ConfGet(ctx, "fake-resources")
	if err != nil {
		return err
	}
	if !ok {
		v = map[string]any{}
	}
	f, err := parseFakeShape(v)
	if err != nil {
		return err
	}
	if f.xml == "" {
		if err := c.printf("Encoding fake R: %d nodes, %d cores/node, %d GPUs/node\n", f.nodes, f.cores, f.gpus); err != nil {
			return err
		}
	}
	args := f.encodeArgs()
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	cmd := strings.Join(args, " ")
	if f.amend != "" {
		cmd = "set -o pipefail; " + cmd + " | flux python -c " + shellQuote(amendProgram) + " " + shellQuote(f.amend)
		if f.xml != "" {
			cmd += " " + shellQuote(f.xml)
		}
	}
	var out bytes.Buffer
	if err := c.s.m.shell.Run(ctx, cmd, c.environ(), &out, c.s.m.stderr); err != nil {
		return fmt.Errorf("encoding R: %w", err)
	}
	var r bytes.Buffer
	if err := json.Compact(&r, out.Bytes()); err != nil || !bytes.HasPrefix(r.Bytes(), []byte("{")) {
		return fmt.Errorf("encoding R: the output is not a JSON object: %q", truncate(out.String(), 80))
	}
	var txn kvs.Txn
	txn.Put("resource.R", r.Bytes())
	if err := kvs.Commit(ctx, c.Handle(), "", &txn); err != nil {
		return fmt.Errorf("resource.R: %w", err)
	}
	if err := c.printf("Fake resources injected.\n"); err != nil {
		return err
	}
	c.Setopt("resource", "monitor-force-up noverify", true)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
