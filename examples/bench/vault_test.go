package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// vaultRows are the first-table rows of the vault benchmark, by label prefix.
var vaultRows = []string{
	"mnemonic → seed (BIP39 PBKDF2-HMAC-SHA512 ×2048), seeds/s",
	"generate 24-word mnemonic + validate, ops/s",
	"seal + open 1 KiB EncryptedData (key cached), ops/s",
	"keystore unlock (Argon2id t=3 m=64MiB p=4), unlocks/s",
}

// TestVaultQuick runs the vault benchmark in quick mode and checks the shape of both
// tables, never the timings.
func TestVaultQuick(t *testing.T) {
	s := runQuick(t, "vault", "-quick")
	if !strings.HasPrefix(s, "## bench vault\n") {
		t.Errorf("output does not start with the title:\n%s", s)
	}
	for _, want := range []string{"- machine: ", "cosmos/go-bip39 v1.0.0", "- quietness: ", "- settings: ", "goal: seal + open ≥ 0.95× the stdlib baseline"} {
		if !strings.Contains(s, want) {
			t.Errorf("header lacks %q:\n%s", want, s)
		}
	}
	checkMedianTable(t, s, vaultRows)
	checkSamplesTable(t, s, vaultMetrics, 1)
}

// TestVaultOnly runs one metric and checks that the tables hold only its rows.
func TestVaultOnly(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"vault", "-quick", "-only", "mnemonic", "-rounds", "2", "-duration", "20ms"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errOut)
	}
	s := out.String()
	checkMedianTable(t, s, vaultRows[1:2])
	checkSamplesTable(t, s, []string{metricMnemonic}, 2)
	rows := tableRows(s, vaultRows)
	for _, label := range []string{vaultRows[0], vaultRows[2], vaultRows[3]} {
		if _, ok := rows[label]; ok {
			t.Errorf("-only mnemonic printed the row %q:\n%s", label, s)
		}
	}
	if n := strings.Count(errOut.String(), "round "); n != 2 {
		t.Errorf("progress has %d round lines, want 2:\n%s", n, &errOut)
	}
}

func TestVaultUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(t.Context(), nil, &out, &errOut); !errors.Is(err, errUsage) || !strings.Contains(errOut.String(), "vault") {
		t.Errorf("no arguments: err = %v, usage:\n%s", err, &errOut)
	}
	if err := run(t.Context(), []string{"vault", "-h"}, &out, &errOut); err != nil {
		t.Errorf("vault -h: %v", err)
	}
	for _, flag := range []string{"-rounds", "-duration", "-unlocks", "-only", "-quick", "-cpuprofile", "-memprofile"} {
		if !strings.Contains(errOut.String(), flag) {
			t.Errorf("vault -h does not describe %s:\n%s", flag, &errOut)
		}
	}
	for _, args := range [][]string{
		{"vault", "-rounds", "x"},
		{"vault", "extra"},
	} {
		if err := run(t.Context(), args, &out, &errOut); !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want errUsage", args, err)
		}
	}
	for _, args := range [][]string{
		{"vault", "-only", "nosuch"},
		{"vault", "-rounds", "0"},
		{"vault", "-duration", "0s"},
		{"vault", "-unlocks", "0"},
	} {
		if err := run(t.Context(), args, &out, &errOut); err == nil || errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want a validation error", args, err)
		}
	}
}

// checkMedianTable checks that the first table has a ratio column and one row of
// positive numbers for each label.
func checkMedianTable(t *testing.T, s string, labels []string) {
	t.Helper()
	md := markdownRows(s)
	if len(md) == 0 || !slices.Equal(md[0], []string{"metric", "alknet", "baseline", "ratio"}) {
		t.Errorf("the first table's header is not metric | alknet | baseline | ratio:\n%s", s)
	}
	checkPairRows(t, s, labels)
}

// checkSamplesTable checks that the second table has a row for each metric key with
// rounds samples per arm.
func checkSamplesTable(t *testing.T, s string, keys []string, rounds int) {
	t.Helper()
	found := make(map[string][]string)
	for _, cells := range markdownRows(s) {
		if slices.Contains(keys, cells[0]) {
			found[cells[0]] = cells
		}
	}
	for _, key := range keys {
		cells, ok := found[key]
		if !ok {
			t.Errorf("no samples row for %q in:\n%s", key, s)
			continue
		}
		if len(cells) != 7 {
			t.Errorf("samples row %q has %d cells, want 7: %q", key, len(cells), cells)
			continue
		}
		for i, arm := range []string{"alknet", "baseline"} {
			samples := strings.Fields(cells[1+i])
			if len(samples) != rounds {
				t.Errorf("samples row %q, %s: %d samples, want %d: %q", key, arm, len(samples), rounds, cells[1+i])
			}
			for _, v := range samples {
				if number(t, key, arm+" samples", v) <= 0 {
					t.Errorf("samples row %q, %s: %q is not positive", key, arm, v)
				}
			}
		}
	}
}
