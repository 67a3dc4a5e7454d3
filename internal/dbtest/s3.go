package dbtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// S3Server is a SeaweedFS server (master, volume, filer and S3 gateway in
// one process) this process started.
type S3Server struct {
	Endpoint string
	Dir      string
	args     []string
	bin      string
	daemon
}

var (
	weedOnce sync.Once
	weedPath string
	weedErr  error
)

// Weed returns the path of the SeaweedFS binary pinned in tools/s3,
// building it into the Go build cache if needed (a few minutes the first
// time).
func Weed() (string, error) {
	weedOnce.Do(func() {
		gomod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			weedErr = err
			return
		}
		dir := filepath.Join(filepath.Dir(strings.TrimSpace(string(gomod))), "tools", "s3")
		out, err := exec.Command("go", "-C", dir, "tool", "-n", "weed").Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			weedErr = fmt.Errorf("go -C %s tool -n weed: %v\n%s", dir, err, stderr)
			return
		}
		weedPath = strings.TrimSpace(string(out))
	})
	return weedPath, weedErr
}

// StartS3 starts an S3 server of the test's own, stopped at cleanup, and
// sets the credentials in the environment.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	d, err := os.MkdirTemp("", "llms3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	s, err := startS3(t, d)
	if err != nil {
		unavailable(t, "s3", err.Error())
	}
	t.Cleanup(s.Kill)
	SetCredentials(t)
	return s
}

// S3Config is the SeaweedFS identity file of the test servers: one
// identity with every right, and anonymous reads (so that a public log can
// be read from the bucket directly).
const S3Config = `{"identities":[{"name":"llmaudit","credentials":[{"accessKey":"` + AccessKey + `","secretKey":"` + SecretKey + `"}],"actions":["Admin","Read","Write","List","Tagging"]},{"name":"anonymous","actions":["Read"]}]}`

func startS3(t testing.TB, dir string) (*S3Server, error) {
	bin, err := Weed()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(conf, []byte(S3Config), 0o600); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	ports := make([]int, 8)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	s := &S3Server{Dir: dir, bin: bin, Endpoint: fmt.Sprintf("http://127.0.0.1:%d", ports[6])}
	s.args = []string{"server", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		fmt.Sprintf("-master.port=%d", ports[0]), fmt.Sprintf("-master.port.grpc=%d", ports[1]),
		fmt.Sprintf("-volume.port=%d", ports[2]), fmt.Sprintf("-volume.port.grpc=%d", ports[3]),
		"-filer", fmt.Sprintf("-filer.port=%d", ports[4]), fmt.Sprintf("-filer.port.grpc=%d", ports[5]),
		"-s3", fmt.Sprintf("-s3.port=%d", ports[6]), fmt.Sprintf("-s3.port.grpc=%d", ports[7]),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=" + conf,
		// Every bucket is a collection with volumes of its own: one volume
		// per bucket at a time (WEED_MASTER_VOLUME_GROWTH_COPY_1, below),
		// sparse files of up to 64 MB, room for many test buckets.
		"-volume.max=1000", "-master.volumeSizeLimitMB=64", "-volume.preStopSeconds=0", "-master.telemetry=false"}
	return s, s.start()
}

func (s *S3Server) start() error {
	cmd := exec.Command(s.bin, s.args...)
	cmd.Env = append(os.Environ(), "WEED_MASTER_VOLUME_GROWTH_COPY_1=1")
	done, err := s.launch(cmd)
	if err != nil {
		return err
	}
	// Ready when a bucket can be made, written and read.
	ctx, cancel := waitCtx()
	defer cancel()
	c := s.Client()
	probe := random("ready-")
	for {
		if _, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(probe)}); err == nil {
			if _, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(probe), Key: aws.String("x"), Body: strings.NewReader("x")}); err == nil {
				c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(probe), Key: aws.String("x")})
				c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(probe)})
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("weed exited: %s", s.Output())
		case <-ctx.Done():
			s.Kill()
			return fmt.Errorf("SeaweedFS did not serve S3 within 90 s: %v\n%s", err, s.Output())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Client is an S3 client of the server with the test credentials.
func (s *S3Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// Restart starts the server again on the same data and ports.
func (s *S3Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}
