package api_test

import (
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
)

func FuzzParseDisclosure(f *testing.F) {
	f.Add([]byte(`{"index":1,"id":"x","fields":["model"],"sd_alg":"sha-256","sd":[],"disclosures":[],"receipt":{"index":1,"leaf":"eA==","leaf_hash":"00","tree_size":2,"inclusion_proof":[],"checkpoint":"c"},"access":{"id":"a","seq":0,"session":"s","leaf":"","leaf_hash":""}}`))
	f.Add([]byte(`{"index":1,"index":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := api.ParseDisclosure(data)
		if err == nil && (d.Receipt == nil || d.SDAlg == "") {
			t.Fatalf("parsed without a receipt or sd_alg: %s", data)
		}
	})
}
