// Package rules is jetmesh's routing layer: it compiles EventBridge event patterns and
// matches events against them (one pattern, or thousands through an index), reads rule
// files, stores rules in the mesh-rules KV bucket, derives each rule's narrowest JetStream
// filter subjects, and reconciles one durable consumer per rule on the EVENTS stream.
package rules
