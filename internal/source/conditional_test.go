package source

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/storeurl"
)

// TestServerHonoursConditions checks what doc.go claims: the servers
// themselves refuse If-None-Match: * on PutObject and on
// CompleteMultipartUpload, and a stale If-Match on PutObject, so the
// create-only guarantee does not rest on the check before the write.
func TestServerHonoursConditions(t *testing.T) {
	for _, kind := range s3test.Kinds {
		t.Run(kind, func(t *testing.T) {
			srv := s3test.Start(t, kind)
			ctx := t.Context()
			st, err := openS3(ctx, storeurl.Location{Raw: srv.URL(""), Scheme: "s3", Host: srv.Bucket}, Options{
				Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
			if err != nil {
				t.Fatal(err)
			}
			bucket, key := aws.String(srv.Bucket), aws.String("k")
			put := func(body string, mod func(*s3.PutObjectInput)) error {
				in := &s3.PutObjectInput{Bucket: bucket, Key: key, Body: strings.NewReader(body)}
				mod(in)
				if _, err := st.client.PutObject(ctx, in); err != nil {
					return st.s3Error("put", "k", err)
				}
				return nil
			}
			content := func() string {
				out, err := st.client.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: key})
				if err != nil {
					t.Fatal(err)
				}
				defer out.Body.Close()
				var b bytes.Buffer
				b.ReadFrom(out.Body)
				return b.String()
			}

			if err := put("one", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }); err != nil {
				t.Fatal(err)
			}
			if err := put("two", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }); !errors.Is(err, ErrExists) {
				t.Errorf("PutObject If-None-Match: * over an existing key: err = %v, want 412 (ErrExists)", err)
			}
			if got := content(); got != "one" {
				t.Errorf("after the refused put the object is %q, want %q", got, "one")
			}
			if err := put("three", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(`"0123456789abcdef0123456789abcdef"`) }); !errors.Is(err, ErrExists) {
				t.Errorf("PutObject with a stale If-Match: err = %v, want 412", err)
			}
			if got := content(); got != "one" {
				t.Errorf("after the refused If-Match put the object is %q, want %q", got, "one")
			}

			up, err := st.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: key})
			if err != nil {
				t.Fatal(err)
			}
			part, err := st.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: key, UploadId: up.UploadId,
				PartNumber: aws.Int32(1), Body: strings.NewReader("four")})
			if err != nil {
				t.Fatal(err)
			}
			_, err = st.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: key, UploadId: up.UploadId,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}},
				IfNoneMatch:     aws.String("*")})
			if err := st.s3Error("complete", "k", err); !errors.Is(err, ErrExists) {
				t.Errorf("CompleteMultipartUpload If-None-Match: * over an existing key: err = %v, want 412 (ErrExists)", err)
			}
			st.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: bucket, Key: key, UploadId: up.UploadId})
			if got := content(); got != "one" {
				t.Errorf("after the refused multipart upload the object is %q, want %q", got, "one")
			}
		})
	}
}
