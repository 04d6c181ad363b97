// Package schemas is jetmesh's schema catalog and registry: it reads a catalog of JSON
// Schemas kept in git (<dir>/<type>/v<N>.json), compiles them once, checks that every new
// version accepts all data the previous one accepted, deploys the catalog to the
// mesh-schemas KV bucket with versions kept immutable, and validates event data against the
// registered versions at publish time, following the bucket live.
package schemas
