// Package backend opens the storage a log runs on:
//
//   - posix (the embedded default): Tessera's POSIX driver in DATA/log and
//     SQLite databases in the data directory (vault.db, state.db, index.db),
//     for one log-server;
//   - s3: Tessera's AWS driver, which sequences in a MySQL-compatible
//     database (MariaDB) and keeps tiles and entry bundles in an
//     S3-compatible bucket, with the vault, tokens, signers, holds, the
//     session index and the session chain heads in that same database, for
//     several log-server instances behind a load balancer.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	tessaws "github.com/transparency-dev/tessera/storage/aws"
	"github.com/transparency-dev/tessera/storage/posix"

	"github.com/go-sql-driver/mysql"

	"github.com/llmaudittrail/llmaudittrail/internal/metrics"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
	"github.com/llmaudittrail/llmaudittrail/journal"
)

// Kinds of storage.
const (
	POSIX = "posix"
	S3    = "s3"
)

// Paths inside a data directory (posix).
const (
	LogDir = "log"
	// JournalDir holds the write-ahead journal.
	JournalDir = "journal"
	VaultDB    = "vault.db"
	StateDB    = "state.db"
	IndexDB    = "index.db"
	S3Region   = "us-east-1" // the default region; S3-compatible stores mostly ignore it
)

// Config says which storage to open. Zero values take the defaults.
type Config struct {
	// Kind is POSIX (default) or S3.
	Kind string
	// DataDir is the data directory of a POSIX log.
	DataDir string
	// DSN is the MySQL database of an S3 log, in go-sql-driver/mysql form
	// (user:password@tcp(127.0.0.1:3306)/llmaudit); Pool its limits.
	DSN  string
	Pool sqldb.Pool
	// S3 is the bucket of an S3 log. Credentials come from the standard
	// AWS environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
	// or the other sources of the AWS SDK's default chain.
	S3 S3Config
	// JournalSegmentSize is the size at which the posix journal begins a
	// new segment file (journal.DefaultSegmentSize).
	JournalSegmentSize int64
	// WitnessClient, if set, is the HTTP client Tessera uses to reach
	// witnesses.
	WitnessClient *http.Client
	Logger        *slog.Logger
}

// S3Config names a bucket of an S3-compatible object store.
type S3Config struct {
	// Endpoint is the store's URL (http://127.0.0.1:8333); empty means
	// AWS's own endpoint for the region. Requests use path-style
	// addressing (ENDPOINT/BUCKET/KEY), which every S3-compatible store
	// serves.
	Endpoint string
	Bucket   string
	// Region defaults to S3Region (or AWS_REGION when set).
	Region string
}

// Backend is the storage of an open log.
type Backend struct {
	Kind   string
	Driver tessera.Driver
	// Journal opens the write-ahead journal.
	Journal journal.Opener
	// State holds tokens, signers, holds and floors; Vault the payloads;
	// Index the session index. On S3 they are one database.
	State, Vault, Index *sqldb.DB
	// S3 is the bucket's client (S3 only).
	S3     *s3.Client
	Bucket string

	dataDir string

	closers []func() error
}

// Open opens the storage of cfg, creating what is missing: a POSIX log's
// directories and databases; an S3 log's schema (tables are created when
// missing, and a version row per component is checked on every start) and
// its bucket.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Backend{Kind: cfg.Kind}
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()
	switch cfg.Kind {
	case "", POSIX:
		b.Kind = POSIX
		if err := b.openPOSIX(ctx, cfg); err != nil {
			return nil, err
		}
	case S3:
		if err := b.openS3(ctx, cfg); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("storage %q: want %s or %s", cfg.Kind, POSIX, S3)
	}
	ok = true
	return b, nil
}

func (b *Backend) openPOSIX(ctx context.Context, cfg Config) error {
	if cfg.DataDir == "" {
		return errors.New("posix storage needs a data directory")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	b.dataDir = cfg.DataDir
	// A data directory that takes no writes is refused at once, saying
	// why (a read-only or full file system), rather than by whichever
	// database fails first.
	if err := b.Health(ctx); err != nil {
		return fmt.Errorf("the data directory %s cannot be written: %w", cfg.DataDir, err)
	}
	var err error
	if b.State, err = b.sqlite(filepath.Join(cfg.DataDir, StateDB), sqlitedb.Durable); err != nil {
		return err
	}
	// The session index is derived from the log and rebuilt from it after
	// a crash, so its commits need not wait for the disk.
	if b.Index, err = b.sqlite(filepath.Join(cfg.DataDir, IndexDB), sqlitedb.Rebuildable, sqlitedb.TempInMemory); err != nil {
		return err
	}
	if b.Vault, err = b.sqlite(filepath.Join(cfg.DataDir, VaultDB), sqlitedb.Durable, sqlitedb.SecureDelete); err != nil {
		return err
	}
	root := filepath.Join(cfg.DataDir, LogDir)
	drv, err := posix.New(ctx, posix.Config{Path: root, HTTPClient: cfg.WitnessClient})
	if err != nil {
		return fmt.Errorf("opening POSIX log: %w", err)
	}
	// Stale partial bundles and tiles are removed as soon as a checkpoint
	// no longer needs them (partials.go).
	b.Driver = posixDriver{inner: drv, root: root, logger: cfg.Logger}
	b.Journal = journal.FileOpener(journal.FileConfig{Dir: filepath.Join(cfg.DataDir, JournalDir), Logger: cfg.Logger, SegmentSize: cfg.JournalSegmentSize,
		GroupSize: func(n int) { metrics.GroupCommitSize.Observe(float64(n)) }})
	return nil
}

func (b *Backend) sqlite(path string, d sqlitedb.Durability, opts ...sqlitedb.Option) (*sqldb.DB, error) {
	db, err := sqldb.OpenSQLite(path, d, opts...)
	if err != nil {
		return nil, err
	}
	b.closers = append(b.closers, db.Close)
	return db, nil
}

func (b *Backend) openS3(ctx context.Context, cfg Config) error {
	if cfg.DSN == "" || cfg.S3.Bucket == "" {
		return errors.New("s3 storage needs a database DSN and a bucket")
	}
	pool := cfg.Pool
	mc, err := sqldb.ParseDSN(cfg.DSN, pool)
	if err != nil {
		return err
	}
	db, err := sqldb.OpenMySQL(ctx, cfg.DSN, pool)
	if err != nil {
		return err
	}
	b.closers = append(b.closers, db.Close)
	b.State, b.Vault, b.Index = db, db, db
	b.Journal = journal.SQLOpener(db, journal.SQLConfig{Logger: cfg.Logger,
		GroupSize: func(n int) { metrics.GroupCommitSize.Observe(float64(n)) }})
	connBudget(ctx, db, pool, cfg.Logger)
	if b.S3, err = newS3Client(ctx, cfg.S3); err != nil {
		return err
	}
	b.Bucket = cfg.S3.Bucket
	if err := b.ensureBucket(ctx, cfg.Logger); err != nil {
		return err
	}
	sdk, err := s3Config(ctx, cfg.S3)
	if err != nil {
		return err
	}
	drv, err := tessaws.New(ctx, tessaws.Config{
		SDKConfig:    &sdk,
		S3Options:    s3Options(cfg.S3),
		Bucket:       cfg.S3.Bucket,
		DSN:          tesseraDSN(mc),
		MaxOpenConns: sqldb.DefaultTesseraConns,
		MaxIdleConns: sqldb.DefaultTesseraConns,
		HTTPClient:   cfg.WitnessClient,
	})
	if err != nil {
		return fmt.Errorf("opening the S3 log: %w", err)
	}
	b.Driver = s3Driver{inner: drv, client: b.S3, bucket: b.Bucket}
	return nil
}

// connBudget says at start how many of the database's connections this
// instance may open, and warns when that alone is more than the server
// takes: past max_connections every pool fails to connect.
func connBudget(ctx context.Context, db *sqldb.DB, pool sqldb.Pool, logger *slog.Logger) {
	own := pool.MaxConns
	if own == 0 {
		own = sqldb.DefaultMaxConns
	}
	budget := own + sqldb.DefaultTesseraConns + sqldb.LockHolders + journal.SQLConns
	var limit int
	if err := db.QueryRowContext(ctx, "SELECT @@max_connections").Scan(&limit); err != nil {
		logger.Warn("reading the database's max_connections", "error", err)
		return
	}
	if budget > limit {
		logger.Warn("this instance may open more database connections than the server takes; lower --db-max-conns or raise max_connections",
			"connections", budget, "max_connections", limit)
		return
	}
	logger.Info("database connections", "this_instance_at_most", budget, "max_connections", limit, "instances_that_fit", limit/budget)
}

// tesseraDSN is the DSN of Tessera's sequencer pool: the same database, in
// READ COMMITTED. Under MariaDB's default REPEATABLE READ the integrator's
// locking read of the Seq table takes a gap lock above the last batch, so
// every batch being sequenced waits while an integration writes its tiles
// to the bucket, and for as long as the bucket does not answer. Tessera
// orders its writers by locking its coordination rows (SeqCoord, IntCoord),
// not by gap locks, so READ COMMITTED keeps its guarantees.
func tesseraDSN(c *mysql.Config) string {
	t := c.Clone()
	if _, ok := t.Params["tx_isolation"]; !ok {
		t.Params["tx_isolation"] = "'READ-COMMITTED'"
	}
	return t.FormatDSN()
}

func s3Config(ctx context.Context, c S3Config) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(time.Minute))}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	sdk, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if sdk.Region == "" {
		sdk.Region = S3Region
	}
	return sdk, nil
}

func s3Options(c S3Config) func(*s3.Options) {
	return func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = true
	}
}

func newS3Client(ctx context.Context, c S3Config) (*s3.Client, error) {
	sdk, err := s3Config(ctx, c)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(sdk, s3Options(c)), nil
}

// ensureBucket creates the bucket if it does not exist.
func (b *Backend) ensureBucket(ctx context.Context, logger *slog.Logger) error {
	_, err := b.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b.Bucket)})
	if err == nil {
		return nil
	}
	var nf *types.NotFound
	if !errors.As(err, &nf) {
		return fmt.Errorf("bucket %s: %w", b.Bucket, err)
	}
	if _, err := b.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b.Bucket)}); err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) {
			return fmt.Errorf("creating bucket %s: %w", b.Bucket, err)
		}
	}
	logger.Info("created bucket", "bucket", b.Bucket)
	return nil
}

// Shared reports whether several instances may run on this storage.
func (b *Backend) Shared() bool { return b.Kind == S3 }

// CheckpointPoll is how often receipts should look for a new checkpoint:
// often on a local file, less on a bucket (each look is a GET, and the AWS
// driver publishes at most once a second).
func (b *Backend) CheckpointPoll() time.Duration {
	if b.Shared() {
		return 200 * time.Millisecond
	}
	return 25 * time.Millisecond
}

// Health says whether the storage can take writes: (posix) a small file
// can be written to the data directory and synced, or (S3) the database
// takes a new connection (sqldb.DB.Probe) and the bucket answers.
func (b *Backend) Health(ctx context.Context) error {
	if b.Kind != S3 {
		f, err := os.CreateTemp(b.dataDir, ".health-")
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		return nil
	}
	if err := b.State.Probe(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if _, err := b.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b.Bucket)}); err != nil {
		return fmt.Errorf("bucket %s: %w", b.Bucket, err)
	}
	return nil
}

// Close closes the databases.
func (b *Backend) Close() error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	b.closers = nil
	return errors.Join(errs...)
}

// OpenState opens only the state database (tokens) of a log: DATA/state.db,
// or the MySQL database of dsn; the token commands use it while the server
// runs.
func OpenState(ctx context.Context, dataDir, dsn string) (*sqldb.DB, error) {
	if dsn != "" {
		return sqldb.OpenMySQL(ctx, dsn, sqldb.Pool{MaxConns: 2})
	}
	path := filepath.Join(dataDir, StateDB)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no log in %s (start log-server --data %s once first): %w", dataDir, dataDir, err)
	}
	return sqldb.OpenSQLite(path, sqlitedb.Durable)
}

// s3Driver is Tessera's AWS driver with a log reader that answers tiles
// and entry bundles as tlog-tiles requires: a missing object is
// os.ErrNotExist, and a partial tile or bundle that garbage collection
// removed once the full one existed is answered by the full one. (The
// driver's own reader reports a missing object as an error of another
// kind, so that neither its fallback nor a 404 happens.)
type s3Driver struct {
	inner  tessera.Driver
	client *s3.Client
	bucket string
}

// lifecycle is the method of a Tessera driver that tessera.NewAppender
// calls; s3Driver and posixDriver implement it over the driver they wrap.
type lifecycle interface {
	Appender(context.Context, *tessera.AppendOptions) (*tessera.Appender, tessera.LogReader, error)
}

// innerAppender starts the appender of the wrapped driver inner.
func innerAppender(ctx context.Context, inner tessera.Driver, opts *tessera.AppendOptions) (*tessera.Appender, tessera.LogReader, error) {
	lc, ok := inner.(lifecycle)
	if !ok {
		return nil, nil, fmt.Errorf("driver %T has no appender", inner)
	}
	return lc.Appender(ctx, opts)
}

// Appender is the lifecycle method tessera.NewAppender calls.
func (d s3Driver) Appender(ctx context.Context, opts *tessera.AppendOptions) (*tessera.Appender, tessera.LogReader, error) {
	a, r, err := innerAppender(ctx, d.inner, opts)
	if err != nil {
		return nil, nil, err
	}
	return a, s3Reader{LogReader: r, d: d}, nil
}

type s3Reader struct {
	tessera.LogReader
	d s3Driver
}

func (r s3Reader) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return r.partialOrFull(ctx, p, func(p uint8) string { return layout.TilePath(level, index, p) })
}

func (r s3Reader) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return r.partialOrFull(ctx, p, func(p uint8) string { return layout.EntriesPath(index, p) })
}

func (r s3Reader) partialOrFull(ctx context.Context, p uint8, path func(uint8) string) ([]byte, error) {
	b, err := r.get(ctx, path(p))
	if errors.Is(err, os.ErrNotExist) && p > 0 {
		return r.get(ctx, path(0))
	}
	return b, err
}

func (r s3Reader) get(ctx context.Context, key string) ([]byte, error) {
	out, err := r.d.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.d.bucket), Key: aws.String(key)})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil, fmt.Errorf("%s: %w", key, os.ErrNotExist)
		}
		return nil, fmt.Errorf("reading %s from bucket %s: %w", key, r.d.bucket, err)
	}
	defer out.Body.Close()
	return io.ReadAll(io.LimitReader(out.Body, maxObject))
}

// maxObject bounds an object read: a full entry bundle of 256 leaves of at
// most 64 KiB each, with their length prefixes.
const maxObject = 256 * (65535 + 2)

// clockSlack is how far in the future the time of the last publication
// may lie before UnstickPublication resets it.
const clockSlack = 5 * time.Second

// UnstickPublication resets the driver's record of when the last
// checkpoint was published (posix: the checkpoint file's modification
// time; S3: Tessera's PubCoord row) when it lies in the future. Both drivers
// publish only once that time is a checkpoint interval in the past, so a
// clock stepped back (or an instance whose clock ran ahead) would stop
// publication until the clock caught up. It reports whether it reset it.
func (b *Backend) UnstickPublication(ctx context.Context) (bool, error) {
	now := time.Now()
	if b.Kind != S3 {
		path := filepath.Join(b.dataDir, LogDir, layout.CheckpointPath)
		fi, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		if !fi.ModTime().After(now.Add(clockSlack)) {
			return false, nil
		}
		return true, os.Chtimes(path, now, now)
	}
	// A plain read first: it takes no lock, while the UPDATE would wait
	// for a publication in progress (which holds the row while it asks
	// the witnesses and writes the bucket).
	var at int64
	if err := b.State.QueryRowContext(ctx, `SELECT publishedAt FROM PubCoord WHERE id = 0`).Scan(&at); err != nil {
		return false, err
	}
	if at <= now.Add(clockSlack).Unix() {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, clockSlack)
	defer cancel()
	res, err := b.State.ExecContext(ctx, `UPDATE PubCoord SET publishedAt = ? WHERE id = 0 AND publishedAt > ?`, now.Unix(), now.Add(clockSlack).Unix())
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
