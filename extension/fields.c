/*
 * fields.c: the one table of dialer fields (JSON key, column, length limit, kind), its
 * aliases, the secret keys, and the lead's other columns. Validation, storage and the
 * response all read them.
 */
#include "leadintake.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

/* Limits are generous for real data; README.md documents them. */
const DialerField li_fields[LI_NFIELDS] = {
	[F_DIALER_LEAD_ID] = {"lead_id", "dialer_lead_id", 64, FK_TEXT},
	[F_VENDOR_ID] = {"vendor_id", "vendor_id", 100, FK_TEXT},
	[F_LIST_ID] = {"list_id", "list_id", 64, FK_TEXT},
	[F_GMT_OFFSET_NOW] = {"gmt_offset_now", "gmt_offset_now", 8, FK_OFFSET},
	[F_PHONE_CODE] = {"phone_code", "phone_code", 5, FK_PHONE_CODE},
	[F_PHONE_NUMBER] = {"phone_number", "phone_number", 32, FK_PHONE},
	[F_TITLE] = {"title", "title", 40, FK_TEXT},
	[F_FIRST_NAME] = {"first_name", "first_name", 100, FK_TEXT},
	[F_MIDDLE_INITIAL] = {"middle_initial", "middle_initial", 10, FK_TEXT},
	[F_LAST_NAME] = {"last_name", "last_name", 100, FK_TEXT},
	[F_FULL_NAME] = {"full_name", "full_name", 255, FK_TEXT},
	[F_ADDRESS1] = {"address1", "address1", 255, FK_TEXT},
	[F_ADDRESS2] = {"address2", "address2", 255, FK_TEXT},
	[F_ADDRESS3] = {"address3", "address3", 255, FK_TEXT},
	[F_CITY] = {"city", "city", 100, FK_TEXT},
	[F_STATE] = {"state", "state", 100, FK_TEXT},
	[F_PROVINCE] = {"province", "province", 100, FK_TEXT},
	[F_POSTAL_CODE] = {"postal_code", "postal_code", 20, FK_TEXT},
	[F_COUNTRY_CODE] = {"country_code", "country_code", 10, FK_TEXT},
	[F_GENDER] = {"gender", "gender", 20, FK_TEXT},
	[F_DATE_OF_BIRTH] = {"date_of_birth", "date_of_birth", 10, FK_DATE},
	[F_ALT_PHONE] = {"alt_phone", "alt_phone", 32, FK_PHONE},
	[F_SECURITY_PHRASE] = {"security_phrase", "security_phrase", 255, FK_TEXT},
	[F_PHONE] = {"phone", "phone", 32, FK_PHONE},
	[F_EMAIL] = {"email", "email", 254, FK_EMAIL},
	[F_COMMENTS] = {"comments", "comments", 10000, FK_TEXT},
	[F_NOTES] = {"notes", "notes", 10000, FK_TEXT},
	[F_CAMPAIGN] = {"campaign", "campaign", 64, FK_TEXT},
	[F_PHONE_LOGIN] = {"phone_login", "phone_login", 64, FK_TEXT},
	[F_FRONTER] = {"fronter", "fronter", 64, FK_TEXT},
	[F_CLOSER] = {"closer", "closer", 64, FK_TEXT},
	[F_GROUP] = {"group", "dialer_group", 64, FK_TEXT},
	[F_CHANNEL_GROUP] = {"channel_group", "channel_group", 64, FK_TEXT},
	[F_SQLDATE] = {"SQLdate", "sql_date", 19, FK_DATETIME},
	[F_EPOCH] = {"epoch", "epoch", 20, FK_INT},
	[F_UNIQUEID] = {"uniqueid", "uniqueid", 64, FK_TEXT},
	[F_CUSTOMER_ZAP_CHANNEL] = {"customer_zap_channel", "customer_zap_channel", 255, FK_TEXT},
	[F_SERVER_IP] = {"server_ip", "server_ip", 45, FK_IP},
	[F_SIPEXTEN] = {"SIPexten", "sip_exten", 64, FK_TEXT},
	[F_SESSION_ID] = {"session_id", "session_id", 64, FK_TEXT},
	[F_DIALED_NUMBER] = {"dialed_number", "dialed_number", 32, FK_TEXT},
	[F_DIALED_LABEL] = {"dialed_label", "dialed_label", 64, FK_TEXT},
	[F_RANK] = {"rank", "rank", 20, FK_TEXT},
	[F_OWNER] = {"owner", "owner", 64, FK_TEXT},
	[F_CAMP_SCRIPT] = {"camp_script", "camp_script", 64, FK_TEXT},
	[F_IN_SCRIPT] = {"in_script", "in_script", 64, FK_TEXT},
	[F_SCRIPT_WIDTH] = {"script_width", "script_width", 10, FK_TEXT},
	[F_SCRIPT_HEIGHT] = {"script_height", "script_height", 10, FK_TEXT},
	[F_RECORDING_FILE] = {"recording_file", "recording_file", 255, FK_TEXT},
	[F_DIALER_USER_ID] = {"dialer_user_id", NULL, 100, FK_IDENTITY},
	[F_USER] = {"user", NULL, 100, FK_IDENTITY},
};

/* Keys clients written from older docs send; the canonical key wins when both come. */
static const struct
{
	const char *alias;
	FieldId field;
} aliases[] = {
	{"agent_username", F_USER},
	{"dialer_lead_id", F_DIALER_LEAD_ID},
	{"recording_filename", F_RECORDING_FILE},
	{"vendor_lead_code", F_VENDOR_ID},
};

/* Never stored nor logged; matched case-insensitively. */
const char *const li_secrets[LI_NSECRETS] = {
	"api_key", "dialer_api_key", "pass", "orig_pass", "phone_pass",
};

static const char *const kind_names[] = {
	[FK_TEXT] = "text",         [FK_PHONE] = "phone", [FK_PHONE_CODE] = "phone_code",
	[FK_EMAIL] = "email",       [FK_DATE] = "date",   [FK_DATETIME] = "datetime",
	[FK_INT] = "integer",       [FK_IP] = "ip",       [FK_OFFSET] = "gmt_offset",
	[FK_IDENTITY] = "identity",
};

static inline bool
key_equals(const char *name, const char *key, int len)
{
	return strncmp(name, key, len) == 0 && name[len] == '\0';
}

/*
 * The field a JSON key names, or -1. A linear scan with an early length test is as fast
 * as hashing for ~55 short keys, and keeps the table the only place a key is written.
 */
int
li_field_lookup(const char *key, int len, bool *is_alias)
{
	*is_alias = false;
	if (len <= 0)
		return -1;
	for (int i = 0; i < LI_NFIELDS; i++)
		if (key[0] == li_fields[i].key[0] && key_equals(li_fields[i].key, key, len))
			return i;
	for (int i = 0; i < lengthof(aliases); i++)
		if (key_equals(aliases[i].alias, key, len))
		{
			*is_alias = true;
			return aliases[i].field;
		}
	return -1;
}

bool
li_is_secret(const char *key, int len)
{
	for (int i = 0; i < LI_NSECRETS; i++)
		if (pg_strncasecmp(li_secrets[i], key, len) == 0 && li_secrets[i][len] == '\0')
			return true;
	return false;
}

/* The response echoes each field under its JSON key; the dialer's lead id is the one exception. */
static const char *
response_key(FieldId f)
{
	return f == F_DIALER_LEAD_ID ? li_fields[f].column : li_fields[f].key;
}

/* The lead's columns that no dialer field fills, and how the response shows each. */
static const LeadColumn own_columns[LC_NOWN] = {
	[LC_ID] = {"id", "id", LS_ID, FK_INT, -1},
	[LC_STATUS] = {"status", "status", LS_VALUE, FK_TEXT, -1},
	[LC_PHONE_E164] = {"phone_e164", "phone_e164", LS_VALUE, FK_TEXT, -1},
	[LC_PHONE_VALID] = {"phone_valid", "phone_valid", LS_BOOL, FK_TEXT, -1},
	[LC_EXTRA] = {"extra", "extra", LS_EXTRA, FK_TEXT, -1},
	[LC_CREATED_AT] = {"created_at", "created_at", LS_UTC, FK_TEXT, -1},
	[LC_UPDATED_AT] = {"updated_at", "updated_at", LS_UTC, FK_TEXT, -1},
	[LC_AGENT] = {"assigned_agent_id", NULL, LS_AGENT, FK_INT, -1},
};

/*
 * Every column of a lead the writes return and the response shows: the own columns (in
 * LeadOwnColumn order, so their index is known), then each stored dialer field's.
 */
const LeadColumn *
li_lead_columns(int *n)
{
	static LeadColumn cols[LC_NOWN + LI_NFIELDS];
	static int ncols = 0;

	if (ncols == 0)
	{
		for (int i = 0; i < LC_NOWN; i++)
			cols[ncols++] = own_columns[i];
		for (int f = 0; f < LI_NFIELDS; f++)
			if (li_fields[f].column)
				cols[ncols++] = (LeadColumn){li_fields[f].column, response_key(f), LS_VALUE,
											 li_fields[f].kind, f};
	}
	*n = ncols;
	return cols;
}

PG_FUNCTION_INFO_V1(leadintake_fields);

/* leadintake.fields(): the field table and the aliases, for the documentation and tests. */
Datum
leadintake_fields(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < LI_NFIELDS; i++)
	{
		Datum values[4];
		bool nulls[4] = {false, false, false, false};

		values[0] = CStringGetTextDatum(li_fields[i].key);
		if (li_fields[i].column)
			values[1] = CStringGetTextDatum(li_fields[i].column);
		else
			nulls[1] = true;
		values[2] = Int32GetDatum(li_fields[i].max_len);
		values[3] = CStringGetTextDatum(kind_names[li_fields[i].kind]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	for (int i = 0; i < lengthof(aliases); i++)
	{
		Datum values[4];
		bool nulls[4] = {false, false, false, false};
		const DialerField *f = &li_fields[aliases[i].field];

		values[0] = CStringGetTextDatum(aliases[i].alias);
		if (f->column)
			values[1] = CStringGetTextDatum(f->column);
		else
			nulls[1] = true;
		values[2] = Int32GetDatum(f->max_len);
		values[3] = CStringGetTextDatum(psprintf("alias of %s", f->key));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
