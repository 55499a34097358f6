// Package job holds Flux's job data formats, the shared ground of every Go
// component that handles jobs: RFC 18 eventlog entries ([Event]), RFC 14
// jobspecs in the version 1 form of RFC 25 ([Jobspec]) and RFC 20 resource
// sets ([R]), decoded as flux-core v0.88 writes and reads them.
//
// # What is checked
//
// [ParseEvent] applies flux-core's eventlog_entry_parse rules: timestamp a
// JSON number, name a string, context (if present) an object, other keys
// allowed. [NewEvent] applies the stricter rules for building one.
// [DecodeEventlog] reads the KVS text form, one entry per line.
//
// [ParseJobspec] accepts what flux-core's job-list and libjob read without
// error: an object with an integer version, a resources array of vertices
// with a type and an integer count, and attributes.system.duration. Other
// members are typed where they are modelled (an integer where jansson
// wants one, so 8.0 is not a count) and kept raw where they are not.
// [Jobspec.Counts] is libjob's jj_get_counts.
//
// [ParseR] accepts what flux-core's librlist accepts: version 1, an
// execution object with an R_lite array of {rank, children} entries whose
// values are RFC 22 idsets. [R.Hosts] assigns the nodelist to the ranks
// in rank order, and fails where librlist fails.
//
// # Decoding many
//
// A component that decodes millions of these (a journal backlog holds one
// jobspec and one R per job) uses a [Decoder]: it reuses the destination's
// storage, keeps one copy of the strings and idsets jobs repeat (queues,
// working directories, commands, R's rank and core sets), and reads with
// fluxkit's hand-written JSON scanner, which the paired benchmarks in this
// package (BenchmarkDecode*) measure against encoding/json on the same
// documents. Values a Decoder returns may alias its input where they are
// raw JSON; strings and idsets never do.
package job
