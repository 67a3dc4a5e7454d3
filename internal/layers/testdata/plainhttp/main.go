// Command plainhttp is the baseline of hookprobe: the same request with
// plain net/http.
package main

import (
	"fmt"
	"net/http"
)

func main() {
	resp, err := http.Get("http://127.0.0.1:1/v1/models")
	fmt.Println(resp, err)
}
