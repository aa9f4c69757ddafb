package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"mailwave/testkit/postgres"
)

// The server starts, takes SQL, survives a kill and a restart with its
// data.
func TestStartKillRestart(t *testing.T) {
	s := postgres.StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, s.Exec(ctx, "postgres", "CREATE DATABASE probe"))
	require.NoError(t, s.Exec(ctx, "probe", "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"))
	s.Kill()
	require.Error(t, s.Exec(ctx, "probe", "SELECT 1"), "killed")
	require.NoError(t, s.Restart(ctx))
	require.NoError(t, s.Exec(ctx, "probe", "DO $$ BEGIN IF (SELECT v FROM t) <> 42 THEN RAISE 'lost'; END IF; END $$"))
}
