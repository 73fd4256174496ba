/*
 * notifier.c: delivery of NOTIFY leadintake_lead. Preloaded, a per-database background
 * worker sends the committed calls' notifications in batches; otherwise each call notifies.
 *
 * Why: PostgreSQL serialises every notifying transaction on one lock held until its commit
 * record is flushed, so one NOTIFY per intake transaction caps the whole database at one
 * commit flush at a time. Here a call's notification waits in backend memory until its
 * transaction commits, then goes to a ring in shared memory; the worker sends many in one
 * transaction of its own. Exactly once, commit order, never for a rolled-back call; when no
 * ring space or worker is to be had, the call notifies in its own transaction as before.
 * Under load the worker sends what GATHER_MS of commits brought, and a commit wakes it only
 * when the ring was empty: neither a wake-up nor a transaction per call.
 */
#include "leadintake.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "commands/async.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#define CHANNEL       "leadintake_lead"
#define NSLOTS        8    /* databases served at once; more notify in their own transactions */
#define RING          1024 /* notifications waiting per database */
#define ENTRY         256  /* bytes per notification, NUL included; longer ones go directly */
#define IDLE_EXIT_MS  2000 /* an idle worker leaves, so DROP DATABASE does not wait on it */
#define GATHER_MS     10   /* after a batch, the worker waits this long for the next one */
#define START_WAIT_US (10 * USECS_PER_SEC) /* a worker not up by then is started again */

typedef struct Slot
{
	Oid dboid;              /* InvalidOid: free */
	pid_t pid;              /* the worker's, 0 when none runs */
	Latch *latch;           /* the worker's, while it runs */
	TimestampTz registered; /* when a worker was last asked for, 0 if never */
	uint64 head;            /* next entry written (backends, at commit) */
	uint64 tail;            /* next entry sent (the worker) */
	uint32 reserved;        /* entries promised to transactions between pre-commit and commit */
	char ring[RING][ENTRY];
} Slot;

typedef struct Shared
{
	LWLock *lock;
	Slot slots[NSLOTS];
} Shared;

/* A notification of this transaction, and the subtransaction level it was made at. */
typedef struct Pending
{
	int level;
	char payload[FLEXIBLE_ARRAY_MEMBER];
} Pending;

static Shared *shared;
static shmem_request_hook_type prev_shmem_request;
static shmem_startup_hook_type prev_shmem_startup;

static List *pending;      /* in TopTransactionContext */
static Slot *reserved_in;  /* where this transaction's entries go at commit */
static int reserved_count; /* how many */

PGDLLEXPORT void leadintake_notifier_main(Datum arg);

static void
request_shmem(void)
{
	if (prev_shmem_request)
		prev_shmem_request();
	RequestAddinShmemSpace(sizeof(Shared));
	RequestNamedLWLockTranche("leadintake", 1);
}

static void
startup_shmem(void)
{
	bool found;

	if (prev_shmem_startup)
		prev_shmem_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("leadintake notifier", sizeof(Shared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(Shared));
		shared->lock = &(GetNamedLWLockTranche("leadintake"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Queue a worker for this database; false when none can be had (max_worker_processes). */
static bool
start_worker(Slot *slot)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	snprintf(w.bgw_name, BGW_MAXLEN, "leadintake notifier for database %u", MyDatabaseId);
	snprintf(w.bgw_type, BGW_MAXLEN, "leadintake notifier");
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "leadintake");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "leadintake_notifier_main");
	w.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	if (!RegisterDynamicBackgroundWorker(&w, NULL))
		return false;
	slot->registered = GetCurrentTimestamp();
	return true;
}

/*
 * At pre-commit: room for n entries in this database's ring, a worker to send them. Called
 * with the lock held exclusively.
 */
static Slot *
reserve(int n)
{
	Slot *slot = NULL;

	for (int i = 0; i < NSLOTS && slot == NULL; i++)
		if (shared->slots[i].dboid == MyDatabaseId)
			slot = &shared->slots[i];
	for (int i = 0; i < NSLOTS && slot == NULL; i++)
		if (shared->slots[i].dboid == InvalidOid)
		{
			slot = &shared->slots[i];
			slot->dboid = MyDatabaseId;
			slot->pid = 0;
			slot->latch = NULL;
			slot->registered = 0;
		}
	if (slot == NULL || RING - (slot->head - slot->tail) - slot->reserved < (uint64) n)
		return NULL;
	if (slot->pid == 0 &&
		(slot->registered == 0 || GetCurrentTimestamp() - slot->registered > START_WAIT_US) &&
		!start_worker(slot))
		return NULL;
	slot->reserved += n;
	return slot;
}

static void
notify_directly(void)
{
	ListCell *lc;

	foreach (lc, pending)
		Async_Notify(CHANNEL, ((Pending *) lfirst(lc))->payload);
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (pending == NIL)
				return;
			/* Runs before PreCommit_Notify, so the fallback still joins this commit. */
			LWLockAcquire(shared->lock, LW_EXCLUSIVE);
			reserved_in = reserve(list_length(pending));
			LWLockRelease(shared->lock);
			if (reserved_in)
				reserved_count = list_length(pending);
			else
				notify_directly();
			return;
		case XACT_EVENT_PRE_PREPARE:
			/* PostgreSQL refuses to PREPARE a notifying transaction: let it say so. */
			notify_directly();
			pending = NIL;
			return;
		case XACT_EVENT_COMMIT:
			if (reserved_in)
			{
				ListCell *lc;
				Latch *latch;

				/* Committed: nothing here may fail, the space was reserved. */
				LWLockAcquire(shared->lock, LW_EXCLUSIVE);
				/* a worker with entries still to send comes back for these by itself */
				latch = reserved_in->head == reserved_in->tail ? reserved_in->latch : NULL;
				foreach (lc, pending)
					strlcpy(reserved_in->ring[reserved_in->head++ % RING],
							((Pending *) lfirst(lc))->payload, ENTRY);
				reserved_in->reserved -= reserved_count;
				LWLockRelease(shared->lock);
				if (latch)
					SetLatch(latch);
			}
			break;
		case XACT_EVENT_ABORT:
			if (reserved_in)
			{
				LWLockAcquire(shared->lock, LW_EXCLUSIVE);
				reserved_in->reserved -= reserved_count;
				LWLockRelease(shared->lock);
			}
			break;
		default:
			return;
	}
	pending = NIL; /* its memory goes with the transaction */
	reserved_in = NULL;
	reserved_count = 0;
}

/* A rolled-back subtransaction takes its notifications with it; a committed one hands
 * them to its parent. Entries of deeper levels are always at the list's end. */
static void
subxact_callback(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void *arg)
{
	int level = GetCurrentTransactionNestLevel();
	int i;

	if (pending == NIL || (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB))
		return;
	/* so walk back from the end: 1,000 subtransactions in a statement stay linear */
	for (i = list_length(pending); i > 0; i--)
	{
		Pending *p = list_nth(pending, i - 1);

		if (p->level < level)
			break;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			p->level = level - 1;
	}
	if (event == SUBXACT_EVENT_ABORT_SUB)
		pending = list_truncate(pending, i);
}

void
li_define_notifier(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request = shmem_request_hook;
	shmem_request_hook = request_shmem;
	prev_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;
}

/* NOTIFY leadintake_lead with payload, on commit of the current transaction only. */
void
li_notify(const char *payload)
{
	MemoryContext old;
	Pending *p;
	size_t len = strlen(payload);

	if (shared == NULL || len >= ENTRY || IsParallelWorker())
	{
		Async_Notify(CHANNEL, payload);
		return;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	p = palloc(offsetof(Pending, payload) + len + 1);
	p->level = GetCurrentTransactionNestLevel();
	memcpy(p->payload, payload, len + 1);
	pending = lappend(pending, p);
	MemoryContextSwitchTo(old);
}

/*
 * Gives the slot up (lock held): backends start another worker for what comes next. A slot
 * with nothing waiting is freed too, so a dropped database does not keep one.
 */
static bool
leave(Slot *slot, bool only_if_idle)
{
	bool idle = slot->head == slot->tail && slot->reserved == 0;

	if (slot->pid != MyProcPid || (only_if_idle && !idle))
		return false;
	slot->pid = 0;
	slot->latch = NULL;
	slot->registered = 0;
	if (idle)
		slot->dboid = InvalidOid;
	return true;
}

static void
detach(int code, Datum arg)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	(void) leave((Slot *) DatumGetPointer(arg), false);
	LWLockRelease(shared->lock);
}

/* Sends what the ring holds in one transaction; false when it was empty. */
static bool
deliver(Slot *slot)
{
	static char batch[RING][ENTRY];
	uint64 n;

	LWLockAcquire(shared->lock, LW_SHARED);
	n = slot->head - slot->tail;
	for (uint64 i = 0; i < n; i++)
		memcpy(batch[i], slot->ring[(slot->tail + i) % RING], ENTRY);
	LWLockRelease(shared->lock);
	if (n == 0)
		return false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, "sending lead notifications");
	for (uint64 i = 0; i < n; i++)
		Async_Notify(CHANNEL, batch[i]);
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	/* Only now are they sent: a failed commit leaves them for the next attempt. */
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	slot->tail += n;
	LWLockRelease(shared->lock);
	return true;
}

void
leadintake_notifier_main(Datum arg)
{
	Oid dboid = DatumGetObjectId(arg);
	Slot *slot = NULL;
	TimestampTz last = GetCurrentTimestamp();

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	if (shared == NULL)
		proc_exit(0);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < NSLOTS; i++)
		if (shared->slots[i].dboid == dboid && shared->slots[i].pid == 0)
			slot = &shared->slots[i];
	if (slot)
	{
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
	}
	LWLockRelease(shared->lock);
	if (slot == NULL)
		proc_exit(0); /* another worker serves this database already */
	before_shmem_exit(detach, PointerGetDatum(slot));

	for (;;)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (deliver(slot))
		{
			/* entries added meanwhile woke no one: the next batch is taken after GATHER_MS */
			last = GetCurrentTimestamp();
			(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, GATHER_MS, PG_WAIT_EXTENSION);
			continue;
		}
		if (TimestampDifferenceExceeds(last, GetCurrentTimestamp(), IDLE_EXIT_MS))
		{
			/* Leave only if nothing came in meanwhile: a backend may wake a gone latch. */
			bool idle;

			LWLockAcquire(shared->lock, LW_EXCLUSIVE);
			idle = leave(slot, true);
			LWLockRelease(shared->lock);
			if (idle)
				proc_exit(0);
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, IDLE_EXIT_MS,
						 PG_WAIT_EXTENSION);
	}
}

/*
 * leadintake.notify_status(): how this database's notifications are sent, how many
 * committed calls' notifications wait for the worker, and the worker's pid if it runs.
 */
PG_FUNCTION_INFO_V1(leadintake_notify_status);
Datum
leadintake_notify_status(PG_FUNCTION_ARGS)
{
	TupleDesc desc;
	Datum values[3];
	bool nulls[3] = {false, false, true};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = CStringGetTextDatum(shared ? "batched" : "per call");
	values[1] = Int64GetDatum(0);
	if (shared)
	{
		LWLockAcquire(shared->lock, LW_SHARED);
		for (int i = 0; i < NSLOTS; i++)
		{
			Slot *slot = &shared->slots[i];

			if (slot->dboid != MyDatabaseId)
				continue;
			values[1] = Int64GetDatum(slot->head - slot->tail + slot->reserved);
			values[2] = Int32GetDatum(slot->pid);
			nulls[2] = slot->pid == 0;
		}
		LWLockRelease(shared->lock);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
