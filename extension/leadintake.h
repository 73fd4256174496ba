/*
 * leadintake.h: the types shared by the extension's files: the dialer field table, the
 * normalised payload, the resolved agent and the outcome of one intake.
 */
#ifndef LEADINTAKE_H
#define LEADINTAKE_H

#include "postgres.h"

/*
 * Built and tested on PostgreSQL 15 only (README, "PostgreSQL versions", says how a port
 * goes).
 */
#if PG_VERSION_NUM < 150000 || PG_VERSION_NUM >= 160000
#error "leadintake supports PostgreSQL 15 only (README: PostgreSQL versions)"
#endif

#include "access/htup.h"
#include "access/tupdesc.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* How a field's text is validated, stored and echoed (contract section 3). */
typedef enum FieldKind
{
	FK_TEXT,       /* free text, length limit only */
	FK_PHONE,      /* digits and separators */
	FK_PHONE_CODE, /* 1 to 4 digits, optional leading + */
	FK_EMAIL,      /* a plausible address */
	FK_DATE,       /* YYYY-MM-DD, a real date; column date */
	FK_DATETIME,   /* YYYY-MM-DD HH:MM:SS; column timestamp */
	FK_INT,        /* an integer; column bigint */
	FK_IP,         /* an IPv4 or IPv6 host address; column inet */
	FK_OFFSET,     /* a number from -12 to 14; column numeric */
	FK_IDENTITY    /* identifies the agent; not a lead column */
} FieldKind;

/*
 * Every known field, in the order of the field table. The enum indexes li_fields[], the
 * normalised values and the statement parameters alike.
 */
typedef enum FieldId
{
	F_DIALER_LEAD_ID, /* key "lead_id": the dialer's id; the CRM's is the lead's "id" */
	F_VENDOR_ID,
	F_LIST_ID,
	F_GMT_OFFSET_NOW,
	F_PHONE_CODE,
	F_PHONE_NUMBER,
	F_TITLE,
	F_FIRST_NAME,
	F_MIDDLE_INITIAL,
	F_LAST_NAME,
	F_FULL_NAME,
	F_ADDRESS1,
	F_ADDRESS2,
	F_ADDRESS3,
	F_CITY,
	F_STATE,
	F_PROVINCE,
	F_POSTAL_CODE,
	F_COUNTRY_CODE,
	F_GENDER,
	F_DATE_OF_BIRTH,
	F_ALT_PHONE,
	F_SECURITY_PHRASE,
	F_PHONE,
	F_EMAIL,
	F_COMMENTS,
	F_NOTES,
	F_CAMPAIGN,
	F_PHONE_LOGIN,
	F_FRONTER,
	F_CLOSER,
	F_GROUP,
	F_CHANNEL_GROUP,
	F_SQLDATE,
	F_EPOCH,
	F_UNIQUEID,
	F_CUSTOMER_ZAP_CHANNEL,
	F_SERVER_IP,
	F_SIPEXTEN,
	F_SESSION_ID,
	F_DIALED_NUMBER,
	F_DIALED_LABEL,
	F_RANK,
	F_OWNER,
	F_CAMP_SCRIPT,
	F_IN_SCRIPT,
	F_SCRIPT_WIDTH,
	F_SCRIPT_HEIGHT,
	F_RECORDING_FILE,
	F_DIALER_USER_ID,
	F_USER,
	LI_NFIELDS
} FieldId;

typedef struct DialerField
{
	const char *key;    /* the JSON key, as the dialer sends it */
	const char *column; /* its column in leadintake.leads; NULL if none */
	int max_len;        /* in characters */
	FieldKind kind;
} DialerField;

/* The lead's columns that no dialer field fills; the index of each in li_lead_columns(). */
typedef enum LeadOwnColumn
{
	LC_ID, /* the CRM's lead id */
	LC_STATUS,
	LC_PHONE_E164,
	LC_PHONE_VALID,
	LC_EXTRA,
	LC_CREATED_AT,
	LC_UPDATED_AT,
	LC_AGENT,
	LC_NOWN
} LeadOwnColumn;

/* How the response shows a lead column (contract section 6). */
typedef enum LeadShow
{
	LS_ID,    /* a JSON number */
	LS_VALUE, /* by the column's kind: a string, or null */
	LS_EXTRA, /* the jsonb object itself */
	LS_UTC,   /* a timestamptz as ISO 8601 in UTC */
	LS_BOOL,  /* a JSON boolean, or null */
	LS_AGENT  /* the agent's id, shown as assigned_agent_username and assigned_agent_name */
} LeadShow;

typedef struct LeadColumn
{
	const char *column; /* in leadintake.leads */
	const char *key;    /* in the response's lead; NULL for LS_AGENT */
	LeadShow show;
	FieldKind kind;
	int field; /* the dialer field it stores (FieldId), or -1 */
} LeadColumn;

/* fields.c */
extern const DialerField li_fields[LI_NFIELDS];

/* Keys never stored nor logged, matched case-insensitively (contract section 3). */
#define LI_NSECRETS 5
extern const char *const li_secrets[LI_NSECRETS];

extern int li_field_lookup(const char *key, int len, bool *is_alias);
extern bool li_is_secret(const char *key, int len);
extern const LeadColumn *li_lead_columns(int *n);

/* payload.c */
/* One field that failed validation; the key is the one the client sent. */
typedef struct FieldError
{
	char *key;
	char *reason;
	JsonbValue *sent; /* a warning's value as sent (kept in extra._invalid); else NULL */
} FieldError;

/* leadintake.invalid_fields (contract section 8) */
typedef enum InvalidFields
{
	LI_INVALID_REJECT, /* a bad known field fails the call: 400 */
	LI_INVALID_KEEP    /* it is stored as absent, kept in extra._invalid, and warned of */
} InvalidFields;

extern int li_invalid_fields;

/* A payload read, normalised and validated. */
typedef struct Payload
{
	char *values[LI_NFIELDS]; /* trimmed text; NULL when absent */
	Jsonb *extra;             /* unknown keys as given; NULL when none */
	Jsonb *logged;            /* the payload as received, secrets removed */
	List *errors;             /* FieldError *, sorted by key */
	List *warnings;           /* FieldError *, sorted by key: invalid values kept (keep) */
	bool not_object;
	bool identity_missing; /* neither dialer_user_id nor user */
	bool name_part_sent;   /* first_name, middle_initial or last_name */
	char *full_name;       /* derived: explicit, else built from the parts */
	char *phone;           /* derived: phone, else phone_number */
	bool phone_parsed;     /* phone_e164 and phone_valid are set (li_parse_phone) */
	char *phone_e164;      /* derived: the phone normalised for matching */
	bool phone_valid;      /* derived: libphonenumber judges it valid (false without phone) */
} Payload;

extern void li_define_payload_guc(void);
extern void li_read_payload(Jsonb *jb, Payload *p);
extern void li_trim(const char **s, int *len);
extern void li_parse_phone(Payload *p);
extern Jsonb *li_redact(Jsonb *jb, bool *changed);
extern char *li_build_full_name(const char *first, const char *middle, const char *last);

/* redact.c */
extern char *li_redact_text(const char *s);

/* phone.c */
extern char *li_default_phone_code;
extern void li_define_phone_guc(void);
extern char *li_phone_parse(const char *phone, const char *phone_code, bool *valid);
extern char *li_phone_e164(const char *phone, const char *phone_code);

/* agents.c */
typedef struct Agent
{
	int64 id;
	char *username;
	char *display_name;
} Agent;

/* The stored lead's agent, as the response names it. */
typedef struct LeadAgent
{
	const char *username;
	const char *name;
} LeadAgent;

extern bool li_resolve_agent(const char *dialer_user_id, const char *user, Agent *agent,
							 char **error);
extern void li_agent_by_id(int64 agent_id, LeadAgent *out);
extern void li_define_agent_cache(void);

/* The outcome of one intake, whichever entry it came through. */
typedef struct Intake
{
	/* the request */
	const char *source; /* 'http', 'sql', 'inbox' or 'replay' */
	const char *key_name;
	Datum client_addr; /* inet, or 0 for none */
	bool minimal;      /* key from the URL: the minimal success body (contract section 7) */
	TimestampTz received_at;
	TimestampTz started_at; /* the call's start, for its duration; 0: received_at */
	Jsonb *logged_payload;
	char *raw_body; /* a body that was not valid JSON */

	/* the outcome */
	int status; /* HTTP status: 201, 400, 404, 500 */
	int sqlstate;
	char *error;       /* one sentence, as the HTTP body says it */
	List *details;     /* FieldError * for a 400 */
	List *warnings;    /* FieldError * for a 201 that kept invalid values */
	int64 crm_lead_id; /* the stored lead's id (intake_log.lead_id) */
	bool created;
	const char *agent_username; /* the stored lead's agent, for NOTIFY */
	Jsonb *response;            /* the HTTP body; built in the caller's context */
	char *dashboard_query;
	int64 log_id; /* its intake_log row, once li_log wrote it */
} Intake;

/* spi.c */
extern struct _SPI_plan *li_keep_plan(const char *sql, int nargs, Oid *types);
extern ErrorData *li_subtransaction(void (*fn)(void *), void *arg);

extern Datum li_text_or_null(const char *s, char *null);

/* lookup.c */
/* The lead a call merges into, as locked: its id and the columns a merge reads. */
typedef enum
{
	FL_FIRST_NAME,
	FL_MIDDLE_INITIAL,
	FL_LAST_NAME,
	FL_PHONE,
	FL_PHONE_CODE,
	FL_DIALER_LEAD_ID,
	FL_NCOLUMNS
} FoundColumn;

typedef struct FoundLead
{
	int64 crm_lead_id;
	ItemPointerData tid; /* of the locked version: the update goes straight to it */
	char *column[FL_NCOLUMNS];
} FoundLead;

extern bool li_find_lead(const char *dialer_lead_id, const char *e164, FoundLead *out);

/* store.c */
/* The lead a write returned: values in the order of li_lead_columns(). */
typedef struct LeadRow
{
	Datum *values;
	bool *nulls;
} LeadRow;

extern bool li_store_lead(Payload *p, Agent *agent, LeadRow *lead);

/* intake.c */
extern void li_process(Jsonb *jb, Intake *in, MemoryContext outer);

/* log.c */
extern void li_log(Intake *in);
extern char *li_error_text(Intake *in);

/* notifier.c */
extern void li_define_notifier(void);
extern void li_notify(const char *payload);

/* result.c */
extern void li_fail(Intake *in, int status, int sqlstate, char *error, List *details);
extern void li_error_response(Intake *in, MemoryContext outer);
extern Jsonb *li_success_response(LeadRow *lead, bool created, LeadAgent *agent,
								  const Payload *minimal_for, List *warnings, int64 *crm_lead_id);
extern char *li_dashboard_query(JsonbContainer *lead);
extern char *li_field_list(const char *prefix, List *fields);
extern void li_field_reasons(JsonbValue *v, List *fields);
extern void li_raise(Intake *in) pg_attribute_noreturn();

#endif /* LEADINTAKE_H */
