-- Trainings running now, readable from any session while stan_train works in another, like
-- pg_stat_progress_*. Each training backend publishes its record in its own slot of the shared
-- backend-status array (src/api/progress.rs), so this needs no shared_preload_libraries.
--
-- stan.progress_rows() runs as the caller (no SECURITY DEFINER) and applies pg_stat_activity's
-- rule itself: a row shows only to roles with the privileges of the training session's role or
-- of pg_read_all_stats (superusers see all). Like pg_stat_activity, it reads one snapshot per
-- transaction: pg_catalog.pg_stat_clear_snapshot() refreshes it inside a long transaction. With
-- track_activities off, nothing is published.
CREATE VIEW stan.progress AS
SELECT p.pid, p.datname, p.model, p.owner, p.phase, p.epoch, p.epochs, p.rows,
       p.rows_per_s, p.loss, p.validation_loss, p.elapsed_s, p.eta_s, p.started_at
  FROM stan.progress_rows() p;
COMMENT ON VIEW stan.progress IS
    'stan trainings running now: phase (reading, fitting, training, storing), epoch, loss, rows per second, elapsed and estimated remaining seconds; NULL until the first epoch';

GRANT SELECT ON stan.progress TO PUBLIC;
