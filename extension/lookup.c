/*
 * lookup.c: the lead a call merges into (contract section 5), found by the dialer's lead id
 * or else the oldest with the phone, and locked as SELECT ... FOR UPDATE would lock it.
 */
#include "leadintake.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

/* The columns a merge reads, in FoundLead order after the id. */
static const char *const lock_columns[] = {"id",    "first_name", "middle_initial", "last_name",
										   "phone", "phone_code", "dialer_lead_id"};
#define NLOCK_COLUMNS lengthof(lock_columns)

/*
 * What the probes need of leadintake.leads, found once per relation: the columns' numbers
 * and the two indexes the contract's look-ups walk (forgotten by forget_relation whenever
 * leads or its indexes change, so a dropped or rebuilt index is never used).
 */
static Oid known_rel = InvalidOid;
static AttrNumber lock_attnum[NLOCK_COLUMNS];
static Oid by_lead_id_index = InvalidOid, by_phone_index = InvalidOid;

static SPIPlanPtr find_plan;

/*
 * A valid, plain b-tree index whose leading key columns are keys (ascending), unique on
 * exactly them if asked: its order is then the ORDER BY of the statement it stands for.
 */
static Oid
index_on(List *indexes, const AttrNumber *keys, int nkeys, bool unique)
{
	ListCell *lc;

	foreach (lc, indexes)
	{
		Relation ix = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index f = ix->rd_index;
		bool ok = f->indisvalid && f->indisready && ix->rd_rel->relam == BTREE_AM_OID &&
				  f->indnkeyatts >= nkeys &&
				  heap_attisnull(ix->rd_indextuple, Anum_pg_index_indpred, NULL) &&
				  (!unique || (f->indisunique && f->indimmediate && f->indnkeyatts == nkeys));

		for (int i = 0; ok && i < nkeys; i++)
			ok = f->indkey.values[i] == keys[i] && ix->rd_indoption[i] == 0;
		index_close(ix, AccessShareLock);
		if (ok)
			return lfirst_oid(lc);
	}
	return InvalidOid;
}

/* Any change to leads (a column dropped and added again, an index) is looked at afresh. */
static void
forget_relation(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == known_rel)
		known_rel = InvalidOid;
}

/* False when the probes cannot stand for the statement: then SPI runs it. */
static bool
know_relation(Relation rel)
{
	static bool watching = false;
	TupleDesc desc = RelationGetDescr(rel);
	AttrNumber by_phone[3];
	List *indexes;

	if (!watching)
	{
		CacheRegisterRelcacheCallback(forget_relation, (Datum) 0);
		watching = true;
	}
	if (known_rel == RelationGetRelid(rel))
		return true;
	for (int i = 0; i < NLOCK_COLUMNS; i++)
		if ((lock_attnum[i] = SPI_fnumber(desc, lock_columns[i])) <= 0)
			return false;
	by_phone[0] = SPI_fnumber(desc, "phone_e164");
	by_phone[1] = SPI_fnumber(desc, "created_at");
	by_phone[2] = lock_attnum[0];
	indexes = RelationGetIndexList(rel);
	by_lead_id_index = index_on(indexes, &lock_attnum[6], 1, true);
	by_phone_index = index_on(indexes, by_phone, 3, false);
	list_free(indexes);
	if (OidIsValid(by_lead_id_index) && OidIsValid(by_phone_index))
		known_rel = RelationGetRelid(rel);
	return OidIsValid(known_rel);
}

/* The first row of index (key = value) the snapshot sees, in index order; false if none. */
static bool
probe(Relation rel, Oid index, const char *value, Snapshot snapshot, TupleTableSlot *slot)
{
	Relation ix = index_open(index, AccessShareLock);
	ScanKeyData key;
	IndexScanDesc scan;
	bool found;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(value));
	key.sk_collation = ix->rd_indcollation[0];
	scan = index_beginscan(rel, ix, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	index_close(ix, NoLock);
	return found;
}

static char *
text_column(TupleTableSlot *slot, int i)
{
	bool isnull;
	Datum d = slot_getattr(slot, lock_attnum[i], &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Lock the row version the probe found as FOR UPDATE does (executor/nodeLockRows.c): wait
 * for a concurrent writer; under READ COMMITTED go on to its newest version, which keeps
 * its id; a deleted row is not found; under REPEATABLE READ a concurrent change is a
 * serialization failure.
 */
static bool
lock_found(Relation rel, Snapshot snapshot, TupleTableSlot *slot)
{
	ItemPointerData tid = slot->tts_tid;
	bool isnull;
	Datum id = slot_getattr(slot, lock_attnum[0], &isnull);
	TM_FailureData tmfd;
	uint8 flags = TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS;

	if (!IsolationUsesXactSnapshot())
		flags |= TUPLE_LOCK_FLAG_FIND_LAST_VERSION;
	switch (table_tuple_lock(rel, &tid, snapshot, slot, GetCurrentCommandId(true),
							 LockTupleExclusive, LockWaitBlock, flags, &tmfd))
	{
		case TM_Ok:
			/* FOR UPDATE re-checks its condition, id = the one found, on a newer version */
			return DatumGetInt64(slot_getattr(slot, lock_attnum[0], &isnull)) == DatumGetInt64(id);
		case TM_SelfModified:
			return false;
		case TM_Updated:
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
								errmsg("could not serialize access due to concurrent update")));
			return false;
		default:
			elog(ERROR, "unexpected result of locking a lead");
	}
}

static bool
find_by_probes(Relation rel, const char *lead_id, const char *e164, FoundLead *out)
{
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Snapshot snapshot;
	bool found = false;

	/* as SPI does for each statement: see this transaction's earlier writes */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	snapshot = GetActiveSnapshot();
	if ((lead_id && probe(rel, by_lead_id_index, lead_id, snapshot, slot)) ||
		(e164 && probe(rel, by_phone_index, e164, snapshot, slot)))
		found = lock_found(rel, snapshot, slot);
	if (found)
	{
		bool isnull;

		out->id = DatumGetInt64(slot_getattr(slot, lock_attnum[0], &isnull));
		out->tid = slot->tts_tid;
		for (int i = 1; i < NLOCK_COLUMNS; i++)
			out->column[i - 1] = text_column(slot, i);
	}
	PopActiveSnapshot();
	ExecDropSingleTupleTableSlot(slot);
	return found;
}

/* The same look-up as one statement, where row-level security applies or an index is gone. */
static bool
find_by_statement(const char *lead_id, const char *e164, FoundLead *out)
{
	Datum values[2];
	char nulls[2] = {lead_id ? ' ' : 'n', e164 ? ' ' : 'n'};
	bool isnull;

	if (find_plan == NULL)
	{
		Oid two_text[2] = {TEXTOID, TEXTOID};

		find_plan = li_keep_plan(
			"SELECT id, first_name, middle_initial, last_name, phone, phone_code, dialer_lead_id,"
			" ctid FROM leadintake.leads WHERE id OPERATOR(pg_catalog.=) coalesce("
			"(SELECT id FROM leadintake.leads WHERE dialer_lead_id OPERATOR(pg_catalog.=) $1),"
			"(SELECT id FROM leadintake.leads WHERE phone_e164 OPERATOR(pg_catalog.=) $2"
			" ORDER BY created_at, id LIMIT 1)) FOR UPDATE",
			2, two_text);
	}
	values[0] = lead_id ? CStringGetTextDatum(lead_id) : (Datum) 0;
	values[1] = e164 ? CStringGetTextDatum(e164) : (Datum) 0;
	if (SPI_execute_plan(find_plan, values, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "lead look-up failed");
	if (SPI_processed != 1)
		return false;
	out->id =
		DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	for (int i = 1; i < NLOCK_COLUMNS; i++)
		out->column[i - 1] = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1);
	out->tid = *(ItemPointer) DatumGetPointer(
		SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, NLOCK_COLUMNS + 1, &isnull));
	return true;
}

/*
 * The lead to merge into, locked until the transaction ends. Two index probes and a tuple
 * lock, without an executor: planning-free, that was a fifth of a call. The probes need
 * SELECT and UPDATE on the table; a caller with column grants only gets the statement,
 * which checks those column by column as it always would.
 */
bool
li_find_lead(const char *lead_id, const char *e164, FoundLead *out)
{
	Oid nsp = get_namespace_oid("leadintake", false);
	Oid relid = get_relname_relid("leads", nsp);
	AclResult acl;
	Relation rel;
	bool found;

	if (!OidIsValid(relid))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
						errmsg("relation \"leadintake.leads\" does not exist")));
	if ((acl = pg_namespace_aclcheck(nsp, GetUserId(), ACL_USAGE)) != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_SCHEMA, "leadintake");

	rel = table_open(relid, RowShareLock);
	/*
	 * The statement where it checks more: read-only (its FOR UPDATE is refused, 25006),
	 * column grants (one mode at a time: a check of several passes when any one is
	 * granted), row-level security, an index the probes do not know.
	 */
	if (XactReadOnly || pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK ||
		pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE) != ACLCHECK_OK ||
		check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED || !know_relation(rel))
		found = find_by_statement(lead_id, e164, out);
	else
		found = find_by_probes(rel, lead_id, e164, out);
	table_close(rel, NoLock);
	return found;
}
