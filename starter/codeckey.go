package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"mailwave/codec"
)

// newCodecKeyCmd makes payload encryption keys: `codec-key new` prints one
// key ring line, ID=BASE64. To rotate, put the new line first in the key
// file of every worker, starter and codec server (after adding it as a
// second line everywhere first, for a rolling deployment), and keep the old lines
// until no running workflow holds payloads sealed with them (14 days and
// the retention period).
func newCodecKeyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "codec-key", Short: "Make payload encryption keys"}
	var id string
	newCmd := &cobra.Command{
		Use:   "new",
		Short: "Print a new random AES-256 key as a key ring line (ID=BASE64)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				id = "k" + time.Now().UTC().Format("20060102-150405")
			}
			if !codec.ValidKeyID(id) {
				return fmt.Errorf("--id %.80q: 1-64 letters, digits, '.', '_' or '-'", id)
			}
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "%s=%s\n", id, base64.StdEncoding.EncodeToString(key))
			return nil
		},
	}
	newCmd.Flags().StringVar(&id, "id", "", "the key's ID (default k<UTC date-time>)")
	cmd.AddCommand(newCmd)
	return cmd
}
