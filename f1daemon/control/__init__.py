"""The control socket: JSON lines over a Unix socket, the server in the daemon and the
`f1daemon ctl` client."""
