package curve_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/go-zeromq/zmq4"
)

func ExampleZ85Encode() {
	bin, _ := hex.DecodeString("864FD26FB559F75B")
	text, _ := curve.Z85Encode(bin)
	fmt.Println(text)
	back, _ := curve.Z85Decode(text)
	fmt.Printf("%X\n", back)
	_, err := curve.Z85Decode("%nSc1")
	fmt.Println(err)
	// Output:
	// HelloWorld
	// 864FD26FB559F75B
	// curve: invalid Z85: group at offset 0 exceeds 32 bits
}

func ExampleKeyPairFromSecret() {
	secret, _ := curve.ParseKey("JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6")
	kp, _ := curve.KeyPairFromSecret(secret)
	fmt.Println(kp.Public)
	fmt.Println(kp) // never prints the secret
	// Output:
	// rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7
	// KeyPair{Public:rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7}
}

func ExampleCert_WriteFile() {
	dir, _ := os.MkdirTemp("", "curve-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "curve.cert")

	secret, _ := curve.ParseKey("JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6")
	kp, _ := curve.KeyPairFromSecret(secret)
	cert := &curve.Cert{Keys: kp, Meta: map[string]string{"name": "3", "keygen.hostname": "node17"}}
	if err := cert.WriteFile(path); err != nil {
		fmt.Println(err)
		return
	}
	text, _ := os.ReadFile(path)
	fmt.Print(string(text))
	st, _ := os.Stat(path)
	fmt.Println(st.Mode().Perm())
	back, _ := curve.ReadCertFile(path)
	fmt.Println(back.Name(), back.Equal(cert))
	// Output:
	// #   ZeroMQ CURVE **Secret** Certificate
	// #   DO NOT DISTRIBUTE
	//
	// metadata
	//     name = "3"
	//     keygen.hostname = "node17"
	// curve
	//     public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
	//     secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
	// -rw-------
	// 3 true
}

func ExampleTransport() {
	// A program registers one transport per scheme, once. The unique name
	// only lets this example run repeatedly in one test binary.
	tr, err := curve.NewTransport(fmt.Sprintf("curve-example-%d", time.Now().UnixNano()))
	if err != nil {
		fmt.Println(err)
		return
	}
	serverKeys, _ := curve.GenerateKeyPair(nil)
	clientKeys, _ := curve.GenerateKeyPair(nil)

	// The parent: a ROUTER that allows one child key, Flux-style.
	srv, _ := tr.NewServer(curve.ServerConfig{Keys: serverKeys, Authorizer: curve.AllowList(clientKeys.Public)})
	defer srv.Close()
	ep, _ := srv.Endpoint("tcp://127.0.0.1:0")
	router := zmq4.NewRouter(context.Background())
	defer router.Close()
	if err := router.Listen(ep); err != nil {
		fmt.Println(err)
		return
	}

	// The child: a DEALER that knows the parent's public key.
	cl, _ := tr.NewClient(curve.ClientConfig{Keys: clientKeys, ServerKey: serverKeys.Public})
	defer cl.Close()
	cep, _ := cl.Endpoint("tcp://" + router.Addr().String())
	dealer := zmq4.NewDealer(context.Background(), zmq4.WithID(zmq4.SocketIdentity("child-1")))
	defer dealer.Close()
	if err := dealer.Dial(cep); err != nil {
		fmt.Println(err)
		return
	}

	_ = dealer.Send(zmq4.NewMsgFrom([]byte("overlay.hello"), []byte("{}")))
	msg, _ := router.Recv()
	peer, _ := srv.Peer(msg.Frames[0])
	fmt.Printf("%s %q\n", msg.Frames[0], msg.Frames[1])
	fmt.Println(peer.Key == clientKeys.Public, peer.UserID == clientKeys.Public.String(), peer.SocketType)
	// Output:
	// child-1 "overlay.hello"
	// true true DEALER
}
