"""The `wemem` command line: a thin absl layer over wemem_tf and attacks."""
