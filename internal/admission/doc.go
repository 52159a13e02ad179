// Package admission is the data path's admission control: the connection
// pools that tenants share, each tenant with a reserved part (Pool, Share),
// and the per-tenant pacer of new connections (Pacer). It knows nothing of
// connections or config: package proxy gives it numbers by tenant name and
// asks, per connection, whether a slot is free.
package admission
