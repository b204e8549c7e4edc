package faultproxy

import (
	"math/rand/v2"
	"time"
)

// Weights are the chance of each mode, out of 1, for Mix; the rest of the
// requests pass.
type Weights map[Mode]float64

// Mix returns a Policy that faults the requests match accepts (every
// request when match is nil): each mode with its weight, at a random offset
// within the requested range (the first 4 KiB without a Range header),
// stalls lasting stall. Its flips obey SoundStore.
func Mix(match func(Request) bool, w Weights, stall time.Duration) Policy {
	return SoundStore(func(r Request, rnd *rand.Rand) Fault {
		if match != nil && !match(r) {
			return Fault{}
		}
		x := rnd.Float64()
		m := Pass
		for mode := Reset; mode < numModes; mode++ {
			if x < w[mode] {
				m = mode
				break
			}
			x -= w[mode]
		}
		if m == Pass {
			return Fault{}
		}
		return Fault{Mode: m, After: rnd.Int64N(span(r)), For: stall}
	})
}

// span is the body length a policy assumes for r.
func span(r Request) int64 {
	if n := r.RangeLen(); n > 0 {
		return n
	}
	return 4 << 10
}

// SoundStore wraps p so that a flip never lands in a request whose range
// holds a byte flipped before (the flip becomes a pass): a client that
// fetches a range again after a failed hash gets good bytes, as from a
// network that corrupts in flight in front of a store that is sound. A flip
// at a random offset gets its offset here.
func SoundStore(p Policy) Policy {
	var flipped []int64 // object offsets flipped so far
	return func(r Request, rnd *rand.Rand) Fault {
		f := p(r, rnd)
		if f.Mode != Flip {
			return f
		}
		start := max(r.RangeStart, 0)
		for _, x := range flipped {
			if x >= start && (r.RangeEnd < 0 || x <= r.RangeEnd) {
				return Fault{}
			}
		}
		if f.After < 0 {
			f.After = rnd.Int64N(span(r))
		}
		flipped = append(flipped, start+f.After)
		return f
	}
}

// Sequence returns a Policy that gives the first len(faults) requests match
// accepts the faults in order, and leaves every other request to then (a
// pass when nil): a script that makes sure each mode happens at least once.
func Sequence(match func(Request) bool, faults []Fault, then Policy) Policy {
	next := 0
	return func(r Request, rnd *rand.Rand) Fault {
		if next < len(faults) && (match == nil || match(r)) {
			next++
			return faults[next-1]
		}
		if then == nil {
			return Fault{}
		}
		return then(r, rnd)
	}
}

// Always returns a Policy that gives f to every request match accepts
// (every request when match is nil), and passes the others.
func Always(match func(Request) bool, f Fault) Policy {
	return func(r Request, _ *rand.Rand) Fault {
		if match != nil && !match(r) {
			return Fault{}
		}
		return f
	}
}

// Ranged accepts the GET requests with a Range header whose path ends with
// suffix (every path when suffix is empty): the reads of an object's parts.
func Ranged(suffix string) func(Request) bool {
	return func(r Request) bool {
		return r.Method == "GET" && r.RangeStart >= 0 && len(r.Path) >= len(suffix) && r.Path[len(r.Path)-len(suffix):] == suffix
	}
}
