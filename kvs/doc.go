// Package kvs speaks flux-core's key-value store protocol: the client side
// that every component uses to read and write the KVS of a real instance
// ([Lookup], [Commit] with a [Txn]), RFC 11 tree objects ([Treeobj]), and
// [Store], an in-memory KVS that serves the same protocol, for the
// in-process test broker and for fluxkit's own brokers.
//
// # Protocol
//
// kvs.lookup takes {"key", "namespace", "flags"} and answers {"val":
// TREEOBJ}: a "val" object with base64 data for a value, or with
// FLUX_KVS_READDIR a "dir". A missing key is ENOENT; a directory looked up
// as a value is EISDIR; a value looked up as a directory is ENOTDIR.
//
// kvs.commit takes {"namespace", "flags", "ops": [{"key", "flags",
// "dirent"}]} and answers {"rootref", "rootseq"} once every operation is
// applied, in order, atomically. A null dirent unlinks the key (missing keys
// are fine); with FLUX_KVS_APPEND a "val" dirent's data is appended to the
// value, which is how RFC 18 eventlogs grow.
//
// Keys are dot-separated paths; runs of dots and leading or trailing dots
// are ignored, as flux-core normalizes them, and "." is the root directory.
// The namespace "primary" is the instance's own; the client uses it unless
// told otherwise (flux-core reads FLUX_KVS_NAMESPACE, which callers may pass
// as the namespace).
package kvs
