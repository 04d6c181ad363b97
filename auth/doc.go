// Package auth is jetmesh's access control: principals (admin, publisher, sidecar of a
// service, viewer), the NATS permissions each one gets, the credentials that prove who
// a client is (NATS .creds files and HTTP bearer tokens), and the auth callout service
// that the embedded nats-server asks, on every connection, who the client is and what it
// may do. Permissions are minted per connection from the principal registry and the
// rules, so a sidecar may reach exactly the consumers of its service's rules.
//
// See docs/security.md for the threat model and the permission table.
package auth
