-- 0011: the work-order ledger's indexes under the names seed 001 gives them.
--
-- Seed 001 names `ux_work_order_ledger_tenant_work_order_event` as the index of the event-replay read
-- (one work order's events in append order, OS_WORK_ORDER_LEDGER_READ); 0005 put that name on the scoped
-- idempotency index and the replay index under another name. Here the idempotency index is named for what it
-- is, and the replay index takes the seed's name. It is unique, as the seed's `ux_` says: it can be, since
-- work_order_event_id is the primary key, so it never refuses a row the primary key accepts. The old replay
-- index covers the same columns and goes.
ALTER INDEX os_core.ux_work_order_ledger_tenant_work_order_event
  RENAME TO ux_work_order_ledger_tenant_work_order_idempotency;
CREATE UNIQUE INDEX ux_work_order_ledger_tenant_work_order_event
  ON os_core.work_order_ledger (tenant_id, work_order_id, work_order_event_id);
DROP INDEX os_core.ix_work_order_ledger_tenant_work_order_event_id;
