package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Spread is a figure measured over repeated runs: its median and the range
// the repeats fell in. Every figure the harness reports is one, so a reader
// sees at once whether a difference is larger than the noise.
type Spread struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	N      int       `json:"n"`
	Values []float64 `json:"values"`
}

// newSpread summarises vs. NaN values (a run that produced no figure) are
// left out; an empty Spread has N == 0.
func newSpread(vs []float64) Spread {
	var clean []float64
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			clean = append(clean, v)
		}
	}
	s := Spread{N: len(clean), Values: clean}
	if len(clean) == 0 {
		return s
	}
	sorted := slices.Clone(clean)
	slices.Sort(sorted)
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	if n := len(sorted); n%2 == 1 {
		s.Median = sorted[n/2]
	} else {
		s.Median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return s
}

// format prints the median and range with the given verb and unit suffix,
// "12.3 [11.9..12.8] ms"; "n/a" when there is no value.
func (s Spread) format(verb, unit string) string {
	if s.N == 0 {
		return "n/a"
	}
	m := fmt.Sprintf(verb, s.Median)
	if s.N == 1 {
		return m + unit
	}
	return fmt.Sprintf("%s [%s..%s]%s", m, fmt.Sprintf(verb, s.Min), fmt.Sprintf(verb, s.Max), unit)
}

// ratios returns a[i]/b[i] for each pair; pairs with b[i] == 0 give NaN.
func ratios(a, b []float64) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		if b[i] == 0 {
			out[i] = math.NaN()
			continue
		}
		out[i] = a[i] / b[i]
	}
	return out
}

// deltas returns a[i]-b[i] for each pair.
func deltas(a, b []float64) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		out[i] = a[i] - b[i]
	}
	return out
}

// percentile returns the p-th percentile (0..100) of ds by the nearest-rank
// method; ds is sorted in place.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := int(math.Ceil(p / 100 * float64(len(ds))))
	return ds[min(max(rank, 1), len(ds))-1]
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
