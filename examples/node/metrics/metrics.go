// Package metrics turns the Stats snapshots of Alknet's modules into Prometheus
// metrics, read at scrape time, and serves them on a plain-HTTP /metrics listener.
//
// The modules know nothing of Prometheus: each exposes a Stats method returning plain
// counters. A plugin hands the node a [Source], a function that reads such a snapshot
// and returns it as [Family] values (this package's own small types: a name, help,
// label names and samples). Only this package imports the Prometheus client, so the
// plugin contract carries no Prometheus type and a plugin that wants no metrics
// imports nothing.
//
// Label values come from fixed sets the server chooses (transports, ALPNs, route and
// outcome names, the names of registered operations), never from a client's request:
// the number of series is bounded whatever clients send.
package metrics

import (
	"fmt"
	"slices"
)

// Kind is the type of a Family.
type Kind int

// Kinds of families.
const (
	// Counter only goes up (it restarts from zero with the process).
	Counter Kind = iota
	// Gauge goes up and down.
	Gauge
	// Histogram counts observations into buckets.
	Histogram
)

// Family is one metric family of a snapshot: its samples share a name, help text and
// label names.
type Family struct {
	// Name is the metric name ("alknet_call_operations_total").
	Name string
	// Help is its one-line description.
	Help string
	// Kind is its type.
	Kind Kind
	// Labels are the label names, in the order of every Sample's Values.
	Labels []string
	// Buckets are a Histogram's bucket upper bounds, ascending (no +Inf).
	Buckets []float64
	// Samples are its series.
	Samples []Sample
}

// Sample is one series of a Family.
type Sample struct {
	// Values are the label values, in the order of Family.Labels.
	Values []string
	// Value is a Counter's or Gauge's value.
	Value float64
	// Count, Sum and Cumulative are a Histogram's: the number of observations, their
	// sum, and for each bound of Family.Buckets the number at or below it.
	Count      uint64
	Sum        float64
	Cumulative []uint64
}

// Source returns the families of one snapshot; the node calls it at every scrape.
type Source func() []Family

// NewCounter returns an empty Counter family.
func NewCounter(name, help string, labels ...string) *Family {
	return &Family{Name: name, Help: help, Kind: Counter, Labels: labels}
}

// NewGauge returns an empty Gauge family.
func NewGauge(name, help string, labels ...string) *Family {
	return &Family{Name: name, Help: help, Kind: Gauge, Labels: labels}
}

// NewHistogram returns an empty Histogram family over buckets.
func NewHistogram(name, help string, buckets []float64, labels ...string) *Family {
	return &Family{Name: name, Help: help, Kind: Histogram, Labels: labels, Buckets: buckets}
}

// Add appends a Counter or Gauge sample with the label values (as many as f.Labels)
// and returns f.
func (f *Family) Add(value float64, values ...string) *Family {
	f.Samples = append(f.Samples, Sample{Values: values, Value: value})
	return f
}

// AddHistogram appends a Histogram sample and returns f.
func (f *Family) AddHistogram(count uint64, sum float64, cumulative []uint64, values ...string) *Family {
	f.Samples = append(f.Samples, Sample{Values: values, Count: count, Sum: sum, Cumulative: cumulative})
	return f
}

// Validate reports a family whose samples do not match its labels or buckets.
func (f *Family) Validate() error {
	if f.Name == "" {
		return fmt.Errorf("metrics: family without a name")
	}
	if f.Kind == Histogram && !slices.IsSorted(f.Buckets) {
		return fmt.Errorf("metrics: %s: buckets not ascending", f.Name)
	}
	for _, s := range f.Samples {
		if len(s.Values) != len(f.Labels) {
			return fmt.Errorf("metrics: %s: %d label values for %d labels", f.Name, len(s.Values), len(f.Labels))
		}
		if f.Kind == Histogram && len(s.Cumulative) != len(f.Buckets) {
			return fmt.Errorf("metrics: %s: %d bucket counts for %d buckets", f.Name, len(s.Cumulative), len(f.Buckets))
		}
	}
	return nil
}
