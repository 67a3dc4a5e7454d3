package disclosure

import "testing"

func TestZZCount(t *testing.T) {
	for _, turns := range []int{1, 20, 200} {
		p := conversation(turns)
		t1, _ := BuildVersion(V1, testSalt, p)
		t2, _ := BuildVersion(V2, testSalt, p)
		dec := 0
		for _, n := range t2.nodes {
			dec += len(n.encoded)
		}
		one := 0
		for _, n := range t1.nodes {
			one += len(n.encoded)
		}
		// decoys: count digests in values: approximate by total lists
		t.Logf("turns %d: fields %d, root %d vs %d, disclosures bytes v1 %d v2 %d", turns, t1.Len(), len(t1.SD), len(t2.SD), one, dec)
	}
}
