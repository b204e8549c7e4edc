package harness

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/twinroot/twinroot/internal/release"
)

// BuildOutput decodes what `updater build -o json` printed.
func BuildOutput(stdout []byte) (release.BuildResult, error) {
	var r release.BuildResult
	if err := json.Unmarshal(stdout, &r); err != nil {
		return r, fmt.Errorf("updater build -o json: %w", err)
	}
	if r.Manifest == nil {
		return r, errors.New("updater build -o json: no manifest")
	}
	return r, nil
}

// PublishOutput decodes what `updater publish -o json` printed.
func PublishOutput(stdout []byte) (release.PublishResult, error) {
	var r release.PublishResult
	if err := json.Unmarshal(stdout, &r); err != nil {
		return r, fmt.Errorf("updater publish -o json: %w", err)
	}
	return r, nil
}
