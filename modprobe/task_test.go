package modprobe

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Go task's unset Priority is the default, and zero is a priority like
// any other: a provider at priority 0 loses to one left at the default.
func TestGoTaskPriorityNilIsDefaultAndZeroIsZero(t *testing.T) {
	d := newDB()
	for _, task := range []Task{
		{Name: "usual", Provides: []string{"svc"}},
		{Name: "last-resort", Provides: []string{"svc"}, Priority: new(0)},
	} {
		e, err := newTaskEntry(task)
		require.NoError(t, err)
		d.add(e)
	}
	assert.Equal(t, DefaultPriority, mustGet(t, d, "usual").priority)
	assert.Equal(t, 0, mustGet(t, d, "last-resort").priority)
	assert.Equal(t, "usual", mustGet(t, d, "svc").name, "the later entry wins only at equal priority")

	e, err := newTaskEntry(Task{Name: "preferred", Provides: []string{"svc"}, Priority: new(DefaultPriority + 1)})
	require.NoError(t, err)
	d.add(e)
	assert.Equal(t, "preferred", mustGet(t, d, "svc").name)
}

// Every module key but "name" can be set and reset, and an unknown key is
// refused even with a null value, as flux-core refuses it.
func TestEveryModuleKeyIsAFieldAndUnknownKeysAreRefused(t *testing.T) {
	for _, k := range moduleKeys {
		_, ok := entryFields[k]
		assert.Equal(t, k != "name", ok, k)
	}
	assert.Len(t, entryFields, len(moduleKeys)-1)

	d := newDB()
	require.NoError(t, d.applyModulesFile("m.toml", []byte("[[modules]]\nname = \"m\"\nargs = [\"a\"]\npriority = 7\n")))
	require.NoError(t, d.applyBrokerModules([]byte(`{"modules":{"m":{"args":null,"priority":null}}}`)))
	m := mustGet(t, d, "m")
	assert.Nil(t, m.args, "null resets args")
	assert.Equal(t, DefaultPriority, m.priority, "null resets priority")
	err := d.applyBrokerModules([]byte(`{"modules":{"m":{"bogus":null}}}`))
	assert.EqualError(t, err, "broker config: modules.m.bogus: invalid config key bogus")
}
