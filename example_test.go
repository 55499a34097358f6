package fluxkit_test

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/fluxkit/fluxkit"
)

func ExampleMessage_Frames() {
	req := fluxkit.NewRequest("attr.get", fluxkit.NodeidAny, []byte(`{"name":"rank"}`))
	req.Matchtag = 1
	for _, f := range req.Frames() {
		fmt.Printf("%q\n", f)
	}
	m, err := fluxkit.DecodeFrames(req.Frames())
	fmt.Println(m.Topic, string(m.Payload), m.Matchtag, err)
	// Output:
	// ""
	// "attr.get"
	// "{\"name\":\"rank\"}\x00"
	// "\x8e\x01\x01\v\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff\x00\x00\x00\x01"
	// attr.get {"name":"rank"} 1 <nil>
}

func ExampleError() {
	// An error response, as a client receives it.
	resp := fluxkit.ResponseTo(fluxkit.NewRequest("attr.get", 0, nil), []byte("unknown attribute"), uint32(syscall.ENOENT))
	err := fluxkit.ErrorFromResponse(resp)
	fmt.Println(err, errors.Is(err, syscall.ENOENT))

	// A handler's error, as it goes back on the wire.
	herr := fmt.Errorf("job %s: %w", fluxkit.JobID(65535), fluxkit.Errorf(fluxkit.EPERM, "not your job"))
	fmt.Println(fluxkit.Errno(herr) == syscall.EPERM, fluxkit.ErrorText(herr))
	// Output:
	// unknown attribute true
	// true job ƒLUv: not your job
}
