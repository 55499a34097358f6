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
