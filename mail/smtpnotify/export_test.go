package smtpnotify

import "time"

// SetRecordFor shortens how long an accepted notice is tried to be
// recorded, for a test; the returned function puts it back.
func SetRecordFor(d time.Duration) (restore func()) {
	old := recordFor
	recordFor = d
	return func() { recordFor = old }
}
