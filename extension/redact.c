/*
 * redact.c: the secrets of a body that is not valid JSON, hidden before the body is kept in
 * intake_log.raw_body (contract sections 2 and 3). The text cannot be parsed, so a secret
 * is found by its key and its value is replaced up to where a lenient reader would end it:
 * any part of a secret left behind is a leak, and text redacted too far is only lost text.
 */
#include "leadintake.h"

#include "lib/stringinfo.h"

static bool
is_word_char(char c)
{
	return isalnum((unsigned char) c) || c == '_';
}

/*
 * Bytes of the space at s, or 0: ASCII white space and the Unicode spaces a lenient reader
 * (or a person looking at the text) takes for one, so that none of them hides a key.
 */
static int
space_len(const char *s)
{
	static const char *const wide[] = {
		"\xC2\xA0",     /* U+00A0 no-break space */
		"\xE1\x9A\x80", /* U+1680 ogham space mark */
		"\xE2\x80\x80", "\xE2\x80\x81", "\xE2\x80\x82", "\xE2\x80\x83", /* U+2000.. */
		"\xE2\x80\x84", "\xE2\x80\x85", "\xE2\x80\x86", "\xE2\x80\x87",
		"\xE2\x80\x88", "\xE2\x80\x89", "\xE2\x80\x8A", "\xE2\x80\x8B", /* ..U+200B */
		"\xE2\x80\xA8", "\xE2\x80\xA9", /* U+2028 line, U+2029 paragraph separator */
		"\xE2\x80\xAF",                 /* U+202F narrow no-break space */
		"\xE2\x81\x9F",                 /* U+205F medium mathematical space */
		"\xE3\x80\x80",                 /* U+3000 ideographic space */
		"\xEF\xBB\xBF"                  /* U+FEFF zero width no-break space */
	};

	if (*s == ' ' || (*s >= '\t' && *s <= '\r'))
		return 1;
	for (int i = 0; i < lengthof(wide); i++)
		if (strncmp(s, wide[i], strlen(wide[i])) == 0)
			return strlen(wide[i]);
	return 0;
}

static int
skip_spaces(const char *s, int j)
{
	int n;

	while ((n = space_len(s + j)) > 0)
		j += n;
	return j;
}

/* The same, stopping at a line break: a value's line ends there. */
static int
skip_spaces_on_line(const char *s, int j)
{
	int n;

	while (s[j] != '\n' && s[j] != '\r' && (n = space_len(s + j)) > 0)
		j += n;
	return j;
}

/*
 * Bytes of the sign between a key and its value at s, or 0: ':' or '=', or a full-width or
 * small form of either, which a lenient reader takes for the same. *form is set for '='
 * (and its forms): the value is then a form's, which no raw '&' can be part of.
 */
static int
sign_len(const char *s, bool *form)
{
	static const struct
	{
		const char *sign;
		bool form;
	} signs[] = {{":", false},
				 {"=", true},
				 {"\xEF\xBC\x9A", false}, /* U+FF1A fullwidth colon */
				 {"\xEF\xB9\x95", false}, /* U+FE55 small colon */
				 {"\xEF\xB8\x93", false}, /* U+FE13 presentation form for vertical colon */
				 {"\xE2\x88\xB6", false}, /* U+2236 ratio */
				 {"\xEF\xBC\x9D", true},  /* U+FF1D fullwidth equals sign */
				 {"\xEF\xB9\xA6", true}}; /* U+FE66 small equals sign */

	for (int i = 0; i < lengthof(signs); i++)
		if (strncmp(s, signs[i].sign, strlen(signs[i].sign)) == 0)
		{
			*form = signs[i].form;
			return strlen(signs[i].sign);
		}
	return 0;
}

/*
 * Where secret name ends if text at s + i spells it, case-insensitively, each character
 * written as itself or as a JSON \uXXXX escape (JSON allows either in a key); else -1.
 */
static int
match_name(const char *s, int i, const char *name)
{
	for (; *name; name++)
	{
		int c;

		if (s[i] == '\\' && s[i + 1] == 'u' && isxdigit((unsigned char) s[i + 2]) &&
			isxdigit((unsigned char) s[i + 3]) && isxdigit((unsigned char) s[i + 4]) &&
			isxdigit((unsigned char) s[i + 5]))
		{
			char hex[5] = {s[i + 2], s[i + 3], s[i + 4], s[i + 5], '\0'};

			c = (int) strtol(hex, NULL, 16);
			i += 6;
		}
		else
			c = (unsigned char) s[i++];
		if (c > 127 || pg_tolower((unsigned char) c) != pg_tolower((unsigned char) *name))
			return -1;
	}
	return i;
}

/*
 * Where the value of a secret key at s + i starts: the name, an optional closing quote,
 * spaces, the sign and spaces; -1 when no secret key is written there.
 */
static int
secret_value_start(const char *s, int i, bool *form)
{
	if (i > 0 && is_word_char(s[i - 1]))
		return -1;
	for (int n = 0; n < LI_NSECRETS; n++)
	{
		int j = match_name(s, i, li_secrets[n]);
		int sign;

		if (j < 0 || is_word_char(s[j]))
			continue;
		if (s[j] == '"' || s[j] == '\'')
			j++;
		j = skip_spaces(s, j);
		if ((sign = sign_len(s + j, form)) == 0)
			continue;
		return skip_spaces(s, j + sign);
	}
	return -1;
}

/* After the quote at s + j: past its closing quote (backslash escapes), or the end. */
static int
quoted_end(const char *s, int j)
{
	char quote = s[j];

	for (j++; s[j] && s[j] != quote; j++)
		if (s[j] == '\\' && s[j + 1])
			j++;
	return s[j] ? j + 1 : j;
}

/*
 * After the bracket at s + j: past the bracket that closes it, nesting and quoted strings
 * (in which brackets do not count) followed, or the end of the text when none closes it.
 */
static int
bracketed_end(const char *s, int j)
{
	int depth = 0;

	while (s[j])
	{
		if (s[j] == '"' || s[j] == '\'')
		{
			j = quoted_end(s, j);
			continue;
		}
		if (s[j] == '[' || s[j] == '{')
			depth++;
		else if ((s[j] == ']' || s[j] == '}') && --depth == 0)
			return j + 1;
		j++;
	}
	return j;
}

/* A value without quotes or brackets: to the end of the line, or of the pair in a form. */
static int
bare_end(const char *s, int j, bool form)
{
	while (s[j] && s[j] != '\n' && s[j] != '\r' && !(form && s[j] == '&'))
		j++;
	return j;
}

/*
 * Whether a quoted or bracketed value really ended at s + j: only spaces, then what ends a
 * value in JSON or a form (or the line or text) follow. Anything else means a stray quote
 * or bracket inside the value, whose tail is still the secret.
 */
static bool
closed_here(const char *s, int j)
{
	j = skip_spaces_on_line(s, j);
	return s[j] == '\0' || strchr(",;&}])\r\n", s[j]) != NULL;
}

/* Where the value at s + j ends, as a lenient reader would end it. */
static int
value_end(const char *s, int j, bool form)
{
	int end;

	if (s[j] == '"' || s[j] == '\'')
		end = quoted_end(s, j);
	else if (s[j] == '[' || s[j] == '{')
		end = bracketed_end(s, j);
	else
		return bare_end(s, j, form);
	return closed_here(s, end) ? end : bare_end(s, end, form);
}

/*
 * The end of the secret value at s + start, stretched over every secret assignment that
 * starts inside it: text read one way (a form's pair ends at '&') can hold a key that is a
 * secret's when read another way (JSON), and that value may go on past the first end.
 */
static int
redacted_end(const char *s, int start, bool form)
{
	int end = value_end(s, start, form);

	for (int k = start; k < end; k++)
	{
		bool inner_form = false;
		int inner = secret_value_start(s, k, &inner_form);

		if (inner >= 0)
			end = Max(end, value_end(s, inner, inner_form));
	}
	return end;
}

/*
 * A body that is not JSON is kept as text, so its secrets are found by name: a secret key
 * followed by a sign (':' or '=') has its whole value replaced, in JSON-ish and form-ish
 * text alike.
 */
char *
li_redact_text(const char *s)
{
	StringInfoData out;
	int i = 0;

	initStringInfo(&out);
	while (s[i])
	{
		bool form = false;
		int start = secret_value_start(s, i, &form);

		if (start < 0)
		{
			appendStringInfoChar(&out, s[i++]);
			continue;
		}
		appendBinaryStringInfo(&out, s + i, start - i);
		appendStringInfoString(&out, "\"[redacted]\"");
		i = redacted_end(s, start, form);
	}
	return out.data;
}
