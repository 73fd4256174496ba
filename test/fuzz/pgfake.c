/*
 * pgfake.c: the PostgreSQL backend functions the extension's payload code calls, for the
 * fuzz harnesses (see pgfake.h for what is real and what is a fake).
 */
#include "pgfake.h"

#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/numeric.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* port.h maps these to the server's own printf; the harness has libc's. */
#undef vsnprintf
#undef snprintf
#undef fprintf
#undef qsort

static void pgfake_die(const char *what) pg_attribute_noreturn();

static void
pgfake_die(const char *what)
{
	fprintf(stderr, "pgfake: %s\n", what);
	abort();
}

/* ---------------------------------------------------------------- memory */

typedef struct Chunk
{
	struct Chunk *prev;
	struct Chunk *next;
	size_t size;
	/* the caller's bytes follow: malloc'd with the header, so ASan guards their end */
} Chunk;

static Chunk *chunks;

#define CHUNK_DATA(c) ((void *) ((char *) (c) + sizeof(Chunk)))
#define DATA_CHUNK(p) ((Chunk *) ((char *) (p) - sizeof(Chunk)))

void *
palloc(Size size)
{
	Chunk *c;

	if (size > MaxAllocSize)
		pgfake_die("palloc: invalid memory alloc request size");
	c = malloc(sizeof(Chunk) + size);
	if (c == NULL)
		pgfake_die("palloc: out of memory");
	c->prev = NULL;
	c->next = chunks;
	c->size = size;
	if (chunks)
		chunks->prev = c;
	chunks = c;
	return CHUNK_DATA(c);
}

void *
palloc0(Size size)
{
	void *p = palloc(size);

	memset(p, 0, size);
	return p;
}

void *
palloc_extended(Size size, int flags)
{
	void *p = palloc(size);

	if (flags & MCXT_ALLOC_ZERO)
		memset(p, 0, size);
	return p;
}

void
pfree(void *pointer)
{
	Chunk *c = DATA_CHUNK(pointer);

	if (c->prev)
		c->prev->next = c->next;
	else
		chunks = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

void *
repalloc(void *pointer, Size size)
{
	Chunk *old = DATA_CHUNK(pointer);
	void *p = palloc(size);

	memcpy(p, pointer, old->size < size ? old->size : size);
	pfree(pointer);
	return p;
}

void
pgfake_reset(void)
{
	while (chunks)
	{
		Chunk *next = chunks->next;

		free(chunks);
		chunks = next;
	}
}

char *
pstrdup(const char *in)
{
	size_t n = strlen(in);
	char *out = palloc(n + 1);

	memcpy(out, in, n + 1);
	return out;
}

char *
pnstrdup(const char *in, Size len)
{
	char *out;

	len = strnlen(in, len);
	out = palloc(len + 1);
	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

char *
psprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *out;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		pgfake_die("psprintf: bad format");
	out = palloc((size_t) n + 1);
	va_start(ap, fmt);
	vsnprintf(out, (size_t) n + 1, fmt, ap);
	va_end(ap);
	return out;
}

/* ---------------------------------------------------------------- StringInfo */

void
initStringInfo(StringInfo str)
{
	str->maxlen = 1024;
	str->data = palloc(str->maxlen);
	str->len = 0;
	str->data[0] = '\0';
	str->cursor = 0;
}

void
enlargeStringInfo(StringInfo str, int needed)
{
	int newlen;

	if (needed < 0 || ((Size) needed) >= (MaxAllocSize - (Size) str->len))
		pgfake_die("enlargeStringInfo: out of memory");
	needed += str->len + 1;
	if (needed <= str->maxlen)
		return;
	newlen = 2 * str->maxlen;
	while (needed > newlen)
		newlen = 2 * newlen;
	if (newlen > (int) MaxAllocSize)
		newlen = (int) MaxAllocSize;
	str->data = repalloc(str->data, newlen);
	str->maxlen = newlen;
}

void
appendBinaryStringInfo(StringInfo str, const char *data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
	str->data[str->len] = '\0';
}

void
appendStringInfoString(StringInfo str, const char *s)
{
	appendBinaryStringInfo(str, s, strlen(s));
}

void
appendStringInfoChar(StringInfo str, char ch)
{
	if (str->len + 1 >= str->maxlen)
		enlargeStringInfo(str, 1);
	str->data[str->len] = ch;
	str->len++;
	str->data[str->len] = '\0';
}

void
appendStringInfo(StringInfo str, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	enlargeStringInfo(str, n);
	va_start(ap, fmt);
	vsnprintf(str->data + str->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	str->len += n;
}

/* ---------------------------------------------------------------- strings, encoding */

unsigned char
pg_tolower(unsigned char ch)
{
	/* src/port/pgstrcasecmp.c, as in the C locale the tests use */
	return ch >= 'A' && ch <= 'Z' ? ch + 'a' - 'A' : ch;
}

int
pg_strncasecmp(const char *s1, const char *s2, size_t n)
{
	/* src/port/pgstrcasecmp.c: ASCII folding only, high-bit bytes compared as they are */
	while (n-- > 0)
	{
		unsigned char ch1 = (unsigned char) *s1++;
		unsigned char ch2 = (unsigned char) *s2++;

		if (ch1 != ch2)
		{
			if (ch1 >= 'A' && ch1 <= 'Z')
				ch1 += 'a' - 'A';
			if (ch2 >= 'A' && ch2 <= 'Z')
				ch2 += 'a' - 'A';
			if (ch1 != ch2)
				return (int) ch1 - (int) ch2;
		}
		if (ch1 == 0)
			break;
	}
	return 0;
}

/* pg_utf_mblen of src/common/wchar.c */
static int
utf_mblen(const unsigned char *s)
{
	if ((*s & 0x80) == 0)
		return 1;
	if ((*s & 0xe0) == 0xc0)
		return 2;
	if ((*s & 0xf0) == 0xe0)
		return 3;
	if ((*s & 0xf8) == 0xf0)
		return 4;
	return 1;
}

/* src/backend/utils/mb/mbutils.c, with the database encoding UTF8 */
int
pg_mbstrlen_with_len(const char *mbstr, int limit)
{
	int len = 0;

	while (limit > 0 && *mbstr)
	{
		int l = utf_mblen((const unsigned char *) mbstr);

		limit -= l;
		mbstr += l;
		len++;
	}
	return len;
}

/* src/backend/utils/adt/datetime.c */
const int day_tab[2][13] = {{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 0},
							{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 0}};

/* ---------------------------------------------------------------- List */

List *
lappend(List *list, void *datum)
{
	if (list == NIL)
	{
		list = palloc(offsetof(List, initial_elements));
		list->type = T_List;
		list->length = 0;
		list->max_length = 4;
		list->elements = palloc(list->max_length * sizeof(ListCell));
	}
	else if (list->length == list->max_length)
	{
		list->max_length *= 2;
		list->elements = repalloc(list->elements, list->max_length * sizeof(ListCell));
	}
	list->elements[list->length++].ptr_value = datum;
	return list;
}

void
list_sort(List *list, list_sort_comparator cmp)
{
	if (list == NIL || list->length < 2)
		return;
	qsort(list->elements, list->length, sizeof(ListCell),
		  (int (*)(const void *, const void *)) cmp);
}

/* ---------------------------------------------------------------- the fake jsonb */

typedef struct Pair
{
	char *key;
	int keylen;
	PgfakeType type;
	char *value;
	int vallen;
	int order; /* position in the input: the last duplicate wins */
} Pair;

/* Every fake container starts with this, after the varlena and jsonb headers. */
StaticAssertDecl(offsetof(Jsonb, root) == sizeof(int32), "Jsonb's root follows its varlena header");

typedef struct FakeJsonb
{
	int32 vl_len_;
	uint32 root_header; /* Jsonb's root.header: JB_FOBJECT or JB_FARRAY, count */
	uint32 magic;
	int kind; /* 0: the document, 1: nested object, 2: nested array, 3: built */
	int nkeys;
	char **keys; /* kind 3: the keys pushed */
	int *keylens;
} FakeJsonb;

#define FAKE_MAGIC 0x7a6b4c01

static Pair *pairs;
static int npairs;
static int cap;
static FakeJsonb *doc;
static FakeJsonb nested_object;
static FakeJsonb nested_array;

void
pgfake_doc_begin(void)
{
	int i;

	for (i = 0; i < npairs; i++)
	{
		free(pairs[i].key);
		free(pairs[i].value);
	}
	npairs = 0;
	doc = NULL;
}

void
pgfake_doc_add(const char *key, int keylen, PgfakeType type, const char *value, int vallen)
{
	Pair *p;

	if (npairs == cap)
	{
		cap = cap ? cap * 2 : 64;
		pairs = realloc(pairs, cap * sizeof(Pair));
		if (pairs == NULL)
			pgfake_die("out of memory");
	}
	p = &pairs[npairs];
	/* exact sizes, no terminator: ASan catches a read past the end */
	p->key = malloc(keylen ? keylen : 1);
	p->value = malloc(vallen ? vallen : 1);
	if (p->key == NULL || p->value == NULL)
		pgfake_die("out of memory");
	memcpy(p->key, key, keylen);
	memcpy(p->value, value, vallen);
	p->keylen = keylen;
	p->vallen = vallen;
	p->type = type;
	p->order = npairs;
	npairs++;
}

/* jsonb's key order: shorter first, then bytewise; equal keys by input order. */
static int
pair_cmp(const void *a, const void *b)
{
	const Pair *x = a;
	const Pair *y = b;
	int c;

	if (x->keylen != y->keylen)
		return x->keylen < y->keylen ? -1 : 1;
	c = memcmp(x->key, y->key, x->keylen);
	if (c != 0)
		return c;
	return x->order < y->order ? -1 : (x->order > y->order);
}

static void
init_container(FakeJsonb *f, int kind, uint32 flag, int count)
{
	memset(f, 0, sizeof(*f));
	SET_VARSIZE(f, sizeof(FakeJsonb));
	f->root_header = flag | (uint32) count;
	f->magic = FAKE_MAGIC;
	f->kind = kind;
}

Jsonb *
pgfake_doc_finish(bool as_array)
{
	int i;
	int n = 0;

	if (npairs > 1)
		qsort(pairs, npairs, sizeof(Pair), pair_cmp);
	/* keep the last of equal keys, as jsonb does */
	for (i = 0; i < npairs; i++)
	{
		if (i + 1 < npairs && pairs[i].keylen == pairs[i + 1].keylen &&
			memcmp(pairs[i].key, pairs[i + 1].key, pairs[i].keylen) == 0)
		{
			free(pairs[i].key);
			free(pairs[i].value);
			continue;
		}
		pairs[n++] = pairs[i];
	}
	npairs = n;
	doc = palloc(sizeof(FakeJsonb));
	init_container(doc, 0, as_array ? JB_FARRAY : JB_FOBJECT, as_array ? 0 : npairs);
	init_container(&nested_object, 1, JB_FOBJECT, 0);
	init_container(&nested_array, 2, JB_FARRAY, 0);
	return (Jsonb *) doc;
}

int
pgfake_doc_count(void)
{
	return npairs;
}

void
pgfake_doc_pair(int i, const char **key, int *keylen, PgfakeType *type, const char **value,
				int *vallen)
{
	*key = pairs[i].key;
	*keylen = pairs[i].keylen;
	*type = pairs[i].type;
	*value = pairs[i].value;
	*vallen = pairs[i].vallen;
}

static FakeJsonb *
fake_of_container(JsonbContainer *c)
{
	FakeJsonb *f = (FakeJsonb *) ((char *) c - offsetof(Jsonb, root));

	if (f->magic != FAKE_MAGIC)
		pgfake_die("JsonbIteratorInit: not a container of the fake");
	return f;
}

JsonbIterator *
JsonbIteratorInit(JsonbContainer *container)
{
	FakeJsonb *f = fake_of_container(container);
	JsonbIterator *it;

	if (f->kind == 3)
		pgfake_die("JsonbIteratorInit: iterating a built object is not faked");
	it = palloc0(sizeof(JsonbIterator));
	it->container = container;
	it->curIndex = 0;
	if (f->kind == 0)
	{
		it->nElems = (container->header & JB_FARRAY) ? 0 : npairs;
		it->state = (container->header & JB_FARRAY) ? JBI_ARRAY_START : JBI_OBJECT_START;
	}
	else
	{
		it->nElems = 0;
		it->state = f->kind == 1 ? JBI_OBJECT_START : JBI_ARRAY_START;
	}
	return it;
}

static void
fill_value(const Pair *p, JsonbValue *v)
{
	switch (p->type)
	{
		case PGFAKE_STRING:
			v->type = jbvString;
			v->val.string.val = p->value;
			v->val.string.len = p->vallen;
			break;
		case PGFAKE_NUMBER:
			/* the Numeric is the numeric_out text: see DirectFunctionCall1Coll */
			v->type = jbvNumeric;
			v->val.numeric = (Numeric) pnstrdup(p->value, p->vallen);
			break;
		case PGFAKE_BOOL:
			v->type = jbvBool;
			v->val.boolean = p->vallen == 4 && memcmp(p->value, "true", 4) == 0;
			break;
		case PGFAKE_NULL:
			v->type = jbvNull;
			break;
		case PGFAKE_OBJECT:
			v->type = jbvBinary;
			v->val.binary.data = &((Jsonb *) &nested_object)->root;
			v->val.binary.len = sizeof(FakeJsonb);
			break;
		case PGFAKE_ARRAY:
			v->type = jbvBinary;
			v->val.binary.data = &((Jsonb *) &nested_array)->root;
			v->val.binary.len = sizeof(FakeJsonb);
			break;
	}
}

JsonbIteratorToken
JsonbIteratorNext(JsonbIterator **it, JsonbValue *val, bool skipNested)
{
	JsonbIterator *i = *it;
	FakeJsonb *f;

	if (i == NULL)
		return WJB_DONE;
	if (!skipNested)
		pgfake_die("JsonbIteratorNext: only skipNested iteration is faked");
	f = fake_of_container(i->container);
	switch (i->state)
	{
		case JBI_ARRAY_START:
			val->type = jbvArray;
			val->val.array.nElems = 0;
			val->val.array.rawScalar = false;
			i->state = JBI_ARRAY_ELEM;
			return WJB_BEGIN_ARRAY;
		case JBI_ARRAY_ELEM:
			pfree(i);
			*it = NULL;
			return WJB_END_ARRAY;
		case JBI_OBJECT_START:
			val->type = jbvObject;
			val->val.object.nPairs = i->nElems;
			i->state = JBI_OBJECT_KEY;
			return WJB_BEGIN_OBJECT;
		case JBI_OBJECT_KEY:
			if (i->curIndex >= (int) i->nElems)
			{
				pfree(i);
				*it = NULL;
				return WJB_END_OBJECT;
			}
			val->type = jbvString;
			val->val.string.val = pairs[i->curIndex].key;
			val->val.string.len = pairs[i->curIndex].keylen;
			i->state = JBI_OBJECT_VALUE;
			return WJB_KEY;
		case JBI_OBJECT_VALUE:
			(void) f;
			fill_value(&pairs[i->curIndex], val);
			i->curIndex++;
			i->state = JBI_OBJECT_KEY;
			return WJB_VALUE;
	}
	pgfake_die("JsonbIteratorNext: bad state");
}

static bool
is_secret_key(const char *key, int len)
{
	static const char *const secrets[] = {"api_key", "dialer_api_key", "pass", "orig_pass",
										  "phone_pass"};
	size_t i;

	for (i = 0; i < lengthof(secrets); i++)
		if ((int) strlen(secrets[i]) == len && strncasecmp(secrets[i], key, len) == 0)
			return true;
	return false;
}

/* Reads every byte of a value, so that ASan sees a dangling or short one. */
static unsigned
touch(const char *s, int len)
{
	volatile unsigned sum = 0;
	int i;

	for (i = 0; i < len; i++)
		sum += (unsigned char) s[i];
	return sum;
}

typedef struct Builder
{
	int nkeys;
	int cap;
	char **keys;
	int *keylens;
} Builder;

JsonbValue *
pushJsonbValue(JsonbParseState **pstate, JsonbIteratorToken seq, JsonbValue *jbval)
{
	Builder *b;

	switch (seq)
	{
		case WJB_BEGIN_OBJECT:
			if (*pstate != NULL)
				pgfake_die("pushJsonbValue: nested objects are not faked");
			*pstate = palloc0(sizeof(JsonbParseState));
			b = palloc0(sizeof(Builder));
			(*pstate)->contVal.type = jbvObject;
			(*pstate)->contVal.val.binary.data = (JsonbContainer *) b; /* our own use */
			return &(*pstate)->contVal;
		case WJB_KEY:
			if (*pstate == NULL || jbval == NULL || jbval->type != jbvString)
				pgfake_die("pushJsonbValue: a key must be a string, inside an object");
			if (is_secret_key(jbval->val.string.val, jbval->val.string.len))
				pgfake_die("pushJsonbValue: a secret key went into a stored object (extra or the "
						   "logged payload)");
			touch(jbval->val.string.val, jbval->val.string.len);
			b = (Builder *) (*pstate)->contVal.val.binary.data;
			if (b->nkeys == b->cap)
			{
				b->cap = b->cap ? b->cap * 2 : 16;
				b->keys = b->keys ? repalloc(b->keys, b->cap * sizeof(char *))
								  : palloc(b->cap * sizeof(char *));
				b->keylens = b->keylens ? repalloc(b->keylens, b->cap * sizeof(int))
										: palloc(b->cap * sizeof(int));
			}
			b->keys[b->nkeys] = pnstrdup(jbval->val.string.val, jbval->val.string.len);
			b->keylens[b->nkeys] = jbval->val.string.len;
			b->nkeys++;
			return &(*pstate)->contVal;
		case WJB_VALUE:
			if (*pstate == NULL || jbval == NULL)
				pgfake_die("pushJsonbValue: a value needs an object");
			if (jbval->type == jbvString)
				touch(jbval->val.string.val, jbval->val.string.len);
			else if (jbval->type == jbvNumeric)
				touch((const char *) jbval->val.numeric, strlen((const char *) jbval->val.numeric));
			else if (jbval->type == jbvBinary)
				(void) fake_of_container(jbval->val.binary.data);
			return &(*pstate)->contVal;
		case WJB_END_OBJECT:
		{
			JsonbValue *done;

			if (*pstate == NULL)
				pgfake_die("pushJsonbValue: END_OBJECT without BEGIN_OBJECT");
			done = palloc(sizeof(JsonbValue));
			*done = (*pstate)->contVal;
			*pstate = NULL;
			return done;
		}
		default:
			pgfake_die("pushJsonbValue: only objects are faked");
	}
}

Jsonb *
JsonbValueToJsonb(JsonbValue *val)
{
	FakeJsonb *f;
	Builder *b;

	if (val->type != jbvObject)
		pgfake_die("JsonbValueToJsonb: only built objects are faked");
	b = (Builder *) val->val.binary.data;
	f = palloc(sizeof(FakeJsonb));
	init_container(f, 3, JB_FOBJECT, b->nkeys);
	f->nkeys = b->nkeys;
	f->keys = b->keys;
	f->keylens = b->keylens;
	return (Jsonb *) f;
}

int
pgfake_built_count(const Jsonb *jb)
{
	const FakeJsonb *f = (const FakeJsonb *) jb;

	if (f == NULL || f->magic != FAKE_MAGIC || f->kind != 3)
		return -1;
	return f->nkeys;
}

void
pgfake_built_key(const Jsonb *jb, int i, const char **key, int *keylen)
{
	const FakeJsonb *f = (const FakeJsonb *) jb;

	*key = f->keys[i];
	*keylen = f->keylens[i];
}

/* ---------------------------------------------------------------- fmgr: numeric_out only */

Datum
numeric_out(PG_FUNCTION_ARGS)
{
	pgfake_die("numeric_out called directly");
}

Datum
DirectFunctionCall1Coll(PGFunction func, Oid collation, Datum arg1)
{
	if (func != numeric_out)
		pgfake_die("DirectFunctionCall1Coll: only numeric_out is faked");
	/* the fake Numeric is already its text */
	return CStringGetDatum(pstrdup((const char *) DatumGetPointer(arg1)));
}

/* ---------------------------------------------------------------- link-only: abort */

char *GUC_check_errdetail_string;
bool process_shared_preload_libraries_in_progress = false;

#define UNREACHABLE(name) pgfake_die(name " is not faked: the harness reached it")

bool
errstart(int elevel, const char *domain)
{
	if (elevel < ERROR)
		return false; /* a LOG or NOTICE: not emitted */
	UNREACHABLE("ereport(ERROR)");
}
bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}
void
errfinish(const char *filename, int lineno, const char *funcname)
{
	UNREACHABLE("errfinish");
}
int
errcode(int sqlerrcode)
{
	UNREACHABLE("errcode");
}
int
errmsg(const char *fmt, ...)
{
	UNREACHABLE("errmsg");
}
int
errdetail(const char *fmt, ...)
{
	UNREACHABLE("errdetail");
}
int
errhint(const char *fmt, ...)
{
	UNREACHABLE("errhint");
}
void
pre_format_elog_string(int errnumber, const char *domain)
{
	UNREACHABLE("pre_format_elog_string");
}
char *
format_elog_string(const char *fmt, ...)
{
	UNREACHABLE("format_elog_string");
}
void
DefineCustomStringVariable(const char *name, const char *short_desc, const char *long_desc,
						   char **valueAddr, const char *bootValue, GucContext context, int flags,
						   GucStringCheckHook check_hook, GucStringAssignHook assign_hook,
						   GucShowHook show_hook)
{
	UNREACHABLE("DefineCustomStringVariable");
}
void
DefineCustomEnumVariable(const char *name, const char *short_desc, const char *long_desc,
						 int *valueAddr, int bootValue, const struct config_enum_entry *options,
						 GucContext context, int flags, GucEnumCheckHook check_hook,
						 GucEnumAssignHook assign_hook, GucShowHook show_hook)
{
	UNREACHABLE("DefineCustomEnumVariable");
}
void
InitMaterializedSRF(FunctionCallInfo fcinfo, bits32 flags)
{
	UNREACHABLE("InitMaterializedSRF");
}
void
tuplestore_putvalues(Tuplestorestate *state, TupleDesc tdesc, Datum *values, bool *isnull)
{
	UNREACHABLE("tuplestore_putvalues");
}
text *
cstring_to_text(const char *s)
{
	UNREACHABLE("cstring_to_text");
}
char *
text_to_cstring(const text *t)
{
	UNREACHABLE("text_to_cstring");
}
struct varlena *
pg_detoast_datum_packed(struct varlena *datum)
{
	UNREACHABLE("pg_detoast_datum_packed");
}
