package connlimit

// FilesPerConn is what one client connection may hold in file descriptors:
// its own and the upstream connection a proxied call or tunnel opens.
const FilesPerConn = 2

// ReserveFiles are the descriptors kept for everything but client
// connections: the data directory, databases, logs, witnesses.
const ReserveFiles = 512

// Fit returns the largest cap per listener, at most max, with which
// listeners listeners fit within files open files (FilesPerConn per
// connection, ReserveFiles kept); files 0 means unknown, and max is kept.
// It returns an error wrapping ErrTooFewFiles when not even one connection
// per listener fits.
func Fit(files uint64, listeners, max int) (int, error) {
	if files == 0 || listeners <= 0 {
		return max, nil
	}
	if files <= ReserveFiles {
		return 0, ErrTooFewFiles
	}
	room := (files - ReserveFiles) / uint64(FilesPerConn*listeners)
	if room == 0 {
		return 0, ErrTooFewFiles
	}
	if uint64(max) > room {
		return int(room), nil
	}
	return max, nil
}
