package imapcopy

// OnDial calls f with each connection c dials and a function that tells how
// many bytes it has read from the server.
func OnDial(c *Copier, f func(side Side, bytesRead func() int64)) {
	c.dialed = func(b *boundedConn) {
		f(b.side, b.read.Load)
	}
}
