package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedFilesAreCurrent fails when capi/sws_abi.h or the Python
// package's _abi.py differ from what the ABI table and the exports give.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	header, python, err := render("../..")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]byte{"../../sws_abi.h": header, "../../../python/steadyws/_abi.py": python} {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date: run `go generate ./capi`", path)
		}
	}
}

// TestEveryExportIsDeclared: a function with a parameter type the
// generator cannot declare fails the generation, so none is left out.
func TestEveryExportIsDeclared(t *testing.T) {
	exports, err := readExports("../..")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range exports {
		names[e.name] = true
		if len(e.params) == 0 && e.name != "sws_abi_version" {
			t.Errorf("%s has no parameters: every export but sws_abi_version takes an sws_error", e.name)
		}
	}
	for _, name := range []string{"sws_connect", "sws_send", "sws_poll", "sws_close", "sws_free", "sws_hub_poll", "sws_server_start"} {
		if !names[name] {
			t.Errorf("%s not found among the exports", name)
		}
	}
}
