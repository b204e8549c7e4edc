package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/twinroot/twinroot/internal/storeurl"
)

// S3 limits on multipart uploads.
const (
	s3MinPart  = 5 << 20
	s3MaxParts = 10000
)

type s3Store struct {
	loc    storeurl.Location
	client *s3.Client
}

func openS3(ctx context.Context, loc storeurl.Location, opts Options) (*s3Store, error) {
	var load []func(*config.LoadOptions) error
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(opts.Profile))
	}
	switch {
	case opts.Anonymous:
		load = append(load, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	case opts.AccessKey != "" || opts.SecretKey != "":
		load = append(load, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, opts.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("open %s: load AWS configuration: %w", loc.Raw, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // S3-compatible servers ignore it; SigV4 needs one
	}
	endpoint := opts.Endpoint
	if endpoint != "" && !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		if opts.MaxAttempts > 0 {
			o.RetryMaxAttempts = opts.MaxAttempts
		}
		if opts.HTTPClient != nil {
			// Set here, not in LoadDefaultConfig, which refuses a plain
			// *http.Client when AWS_CA_BUNDLE is set: the caller's client
			// brings its own TLS configuration.
			o.HTTPClient = opts.HTTPClient
		}
		// Path-style works on every S3-compatible server and with bucket
		// names that are not DNS labels; virtual hosts need DNS per bucket.
		o.UsePathStyle = true
		// MinIO, versitygw and older Ceph reject or mangle the CRC trailers
		// the SDK sends by default since 2025; integrity comes from the
		// signed manifest's SHA-256 instead.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &s3Store{loc: loc, client: client}, nil
}

func (s *s3Store) String() string { return s.loc.Raw }

func (s *s3Store) objectKey(key string) string {
	if s.loc.Prefix == "" {
		return key
	}
	return s.loc.Prefix + "/" + key
}

func (s *s3Store) url(key string) string {
	return "s3://" + s.loc.Host + "/" + s.objectKey(key)
}

// s3Error turns the SDK's errors into this package's sentinels.
func (s *s3Store) s3Error(op, key string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchBucket" {
		return fmt.Errorf("%s %s: bucket %q does not exist", op, s.url(key), s.loc.Host)
	}
	if nerr := netError(err); nerr != err {
		return fmt.Errorf("%s %s: %w", op, s.url(key), nerr)
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		code := respErr.HTTPStatusCode()
		switch code {
		case http.StatusNotModified:
			return fmt.Errorf("%s %s: %w", op, s.url(key), ErrNotModified)
		case http.StatusNotFound:
			return fmt.Errorf("%s %s: %w", op, s.url(key), ErrNotFound)
		case http.StatusPreconditionFailed:
			return fmt.Errorf("%s %s: %w", op, s.url(key), ErrExists)
		case http.StatusRequestedRangeNotSatisfiable:
			return fmt.Errorf("%s %s: %w", op, s.url(key), ErrRange)
		}
		// The server's own words say what it was (for a 403: a bad key,
		// a bad signature, a clock off, a policy). The SDK's error stays
		// in the chain but not in the message, which would repeat the
		// operation, the attempts and the request id: its status, and
		// whether it marked the error retryable (a clock skew it corrects
		// for the next request), still count.
		answer := strconv.Itoa(code) + " " + http.StatusText(code)
		if apiErr != nil {
			answer = strconv.Itoa(code) + " " + apiErr.ErrorCode()
			if m := apiErr.ErrorMessage(); m != "" {
				answer += ": " + m
			}
		}
		if code == http.StatusUnauthorized || code == http.StatusForbidden {
			return &answerError{msg: fmt.Sprintf("%s %s: %v (%s)", op, s.url(key), ErrDenied, answer), errs: []error{ErrDenied, err}}
		}
		return &answerError{msg: fmt.Sprintf("%s %s: server answered %s", op, s.url(key), answer), errs: []error{err}}
	}
	return fmt.Errorf("%s %s: %w", op, s.url(key), err)
}

// answerError is an error answer of the server's, in its own words, with
// the SDK's error (and a sentinel of this package's) in the chain.
type answerError struct {
	msg  string
	errs []error
}

func (e *answerError) Error() string   { return e.msg }
func (e *answerError) Unwrap() []error { return e.errs }

func (s *s3Store) Get(ctx context.Context, key, etag string) (io.ReadCloser, string, error) {
	if err := storeurl.CheckKey(key); err != nil {
		return nil, "", err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.loc.Host), Key: aws.String(s.objectKey(key))}
	if etag != "" {
		in.IfNoneMatch = aws.String(etag)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, "", s.s3Error("get", key, err)
	}
	return out.Body, aws.ToString(out.ETag), nil
}

func (s *s3Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := storeurl.CheckKey(key); err != nil {
		return nil, err
	}
	if err := checkRange(off, n); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.loc.Host),
		Key:    aws.String(s.objectKey(key)),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	})
	if err != nil {
		return nil, s.s3Error(fmt.Sprintf("get [%d, %d) of", off, off+n), key, err)
	}
	if got := aws.ToInt64(out.ContentLength); got != n {
		out.Body.Close()
		// A range running past the end is clipped by the server, not
		// refused: the object is shorter than the index says. Any other
		// length is an answer broken on its way, worth another try.
		cr := aws.ToString(out.ContentRange)
		if _, _, size, err := parseContentRange(cr); err == nil && size >= 0 && size < off+n {
			return nil, fmt.Errorf("get [%d, %d) of %s: the object has %d bytes: %w", off, off+n, s.url(key), size, ErrRange)
		}
		return nil, fmt.Errorf("get [%d, %d) of %s: server sent a length of %d bytes for %d (Content-Range %q)", off, off+n, s.url(key), got, n, cr)
	}
	return &exactReader{r: out.Body, c: out.Body, left: n}, nil
}

func (s *s3Store) Stat(ctx context.Context, key string) (int64, string, error) {
	if err := storeurl.CheckKey(key); err != nil {
		return 0, "", err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.loc.Host), Key: aws.String(s.objectKey(key))})
	if err != nil {
		return 0, "", s.s3Error("stat", key, err)
	}
	return aws.ToInt64(out.ContentLength), aws.ToString(out.ETag), nil
}

// absent refuses early, before any byte is sent, when key exists. The
// conditional write that follows closes the race on servers that honour
// If-None-Match; on the others this check is the whole guarantee.
func (s *s3Store) absent(ctx context.Context, op, key string) error {
	_, _, err := s.Stat(ctx, key)
	switch {
	case err == nil:
		return fmt.Errorf("%s %s: %w", op, s.url(key), ErrExists)
	case errors.Is(err, ErrNotFound):
		return nil
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

func (s *s3Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := storeurl.CheckKey(key); err != nil {
		return err
	}
	if err := s.absent(ctx, "put", key); err != nil {
		return err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.loc.Host),
		Key:           aws.String(s.objectKey(key)),
		Body:          r,
		ContentLength: aws.Int64(size),
		IfNoneMatch:   aws.String("*"),
	}
	if _, err := s.client.PutObject(ctx, in, s.payloadOpts(r)...); err != nil {
		return s.s3Error("put", key, err)
	}
	return nil
}

func (s *s3Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := storeurl.CheckKey(key); err != nil {
		return err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.loc.Host),
		Key:           aws.String(s.objectKey(key)),
		Body:          r,
		ContentLength: aws.Int64(size),
	}
	if _, err := s.client.PutObject(ctx, in, s.payloadOpts(r)...); err != nil {
		return s.s3Error("put", key, err)
	}
	return nil
}

func (s *s3Store) Replace(ctx context.Context, key string, r io.Reader, size int64, etag string) error {
	if etag == "" {
		return s.PutIfAbsent(ctx, key, r, size)
	}
	if err := storeurl.CheckKey(key); err != nil {
		return err
	}
	// As in absent: the check refuses early, If-Match closes the race
	// where the server honours it.
	_, cur, err := s.Stat(ctx, key)
	if errors.Is(err, ErrNotFound) || (err == nil && cur != etag) {
		return fmt.Errorf("replace %s: %w", s.url(key), ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("replace: %w", err)
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.loc.Host),
		Key:           aws.String(s.objectKey(key)),
		Body:          r,
		ContentLength: aws.Int64(size),
		IfMatch:       aws.String(etag),
	}
	if _, err := s.client.PutObject(ctx, in, s.payloadOpts(r)...); err != nil {
		err = s.s3Error("replace", key, err)
		if errors.Is(err, ErrExists) || errors.Is(err, ErrNotFound) {
			// 412 here means the ETag no longer matches; 404 that the key went away.
			return fmt.Errorf("replace %s: %w", s.url(key), ErrChanged)
		}
		return err
	}
	return nil
}

// payloadOpts sends a stream unsigned: SigV4 over plain http hashes the
// payload, which needs a second pass over the body (the manifest's SHA-256
// covers it end to end instead).
func (s *s3Store) payloadOpts(r io.Reader) []func(*s3.Options) {
	if _, ok := r.(io.ReadSeeker); ok {
		return nil
	}
	return []func(*s3.Options){s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)}
}

func (s *s3Store) Upload(ctx context.Context, key string, r io.ReaderAt, size, partSize int64, parallel int) (err error) {
	if err := storeurl.CheckKey(key); err != nil {
		return err
	}
	partSize = partPlan(size, partSize, s3MinPart, s3MaxParts)
	if size <= partSize {
		return s.PutIfAbsent(ctx, key, io.NewSectionReader(r, 0, size), size)
	}
	if err := s.absent(ctx, "upload", key); err != nil {
		return err
	}
	if parallel < 1 {
		parallel = 1
	}
	bucket, objKey := aws.String(s.loc.Host), aws.String(s.objectKey(key))
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: objKey})
	if err != nil {
		return s.s3Error("upload", key, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			// Parts of an unfinished upload cost storage until aborted.
			// The caller's context may be what failed: abort regardless.
			s.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{
				Bucket: bucket, Key: objKey, UploadId: uploadID})
		}
	}()

	nparts := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, nparts)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for range min(parallel, nparts) {
		wg.Go(func() {
			for i := range next {
				off := int64(i) * partSize
				n := min(partSize, size-off)
				out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
					Bucket: bucket, Key: objKey, UploadId: uploadID,
					PartNumber:    aws.Int32(int32(i + 1)),
					Body:          io.NewSectionReader(r, off, n),
					ContentLength: aws.Int64(n),
				})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("upload part %d of %d (bytes %d-%d) of %s: %w", i+1, nparts, off, off+n, s.url(key), err)
					}
					mu.Unlock()
					cancel()
					continue
				}
				parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
			}
		})
	}
feed:
	for i := range nparts {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("upload %s: %w", s.url(key), err)
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: bucket, Key: objKey, UploadId: uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     aws.String("*"),
	})
	if err != nil {
		return s.s3Error("complete upload", key, err)
	}
	return nil
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]Object, error) {
	full := s.objectKey(prefix)
	if s.loc.Prefix != "" && prefix == "" {
		full = s.loc.Prefix + "/"
	}
	var objs []Object
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.loc.Host), Prefix: aws.String(full)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.s3Error("list", prefix, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if s.loc.Prefix != "" {
				k = strings.TrimPrefix(k, s.loc.Prefix+"/")
			}
			objs = append(objs, Object{Key: k, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag)})
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	return objs, nil
}
