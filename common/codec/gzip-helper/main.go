// deltasync-gzip: gzip with Go's compress/gzip, for rebuilding layer blobs
// byte for byte.
//
// Images built by BuildKit (and layers pushed by Docker) are gzip streams
// written by Go's compress/gzip at its default level with an empty header
// (no name, mtime 0, OS 255). No C compressor reproduces them: Go's deflate
// chooses its matches and block boundaries its own way, and that choice
// changed between Go releases (1.19 and 1.27 differ). So deltasync builds
// this program with each Go toolchain it is given, one binary per
// toolchain; the C++ side (common/codec/go_gzip.cpp) tells them apart by a
// fingerprint of their output and a sender names the one that reproduces a
// blob, which the site then runs to rebuild it. The site checks every
// rebuilt blob against its digest, so a wrong guess can only cost the exact
// identity, never correctness.
//
// Usage: deltasync-gzip [-level N] < plain > compressed
//        deltasync-gzip -version
package main

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
)

func main() {
	level := flag.Int("level", gzip.DefaultCompression, "compress/gzip level (-1 = default, 1-9)")
	version := flag.Bool("version", false, "print the Go version this was built with")
	flag.Parse()
	if *version {
		fmt.Println(runtime.Version())
		return
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	zw, err := gzip.NewWriterLevel(out, *level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deltasync-gzip:", err)
		os.Exit(2)
	}
	if _, err := io.Copy(zw, bufio.NewReaderSize(os.Stdin, 1<<20)); err != nil {
		fmt.Fprintln(os.Stderr, "deltasync-gzip: reading input:", err)
		os.Exit(1)
	}
	if err := zw.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "deltasync-gzip:", err)
		os.Exit(1)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "deltasync-gzip: writing output:", err)
		os.Exit(1)
	}
}
