/*
 * fuzz_acl.c: shim/acl.c, the --allow-ip CIDR parser (acl_add), the match of a peer address
 * (acl_allows) and the peer address as text (sockaddr_text).
 *
 * acl.c is included here, not linked, so that the harness can empty the allowlist between
 * inputs (it has no reset function: the shim fills it once, at start).
 *
 * Input: up to 4 CIDR texts separated by newlines, then a line "@" followed by peer
 * addresses of 17 bytes each (a family byte: even IPv4, odd IPv6; then 16 address bytes).
 * Checked besides the sanitizers: acl_add accepts exactly what a reference parser accepts
 * (inet_pton of the address, a decimal prefix length within the family's bits); acl_allows
 * agrees with a reference bit-by-bit match (IPv4-mapped IPv6 treated as IPv4, on both
 * sides); sockaddr_text writes inet_ntop's text, or "" when it does not fit.
 */
#include "../../shim/acl.c"

#include <arpa/inet.h>
#include <stdlib.h>

#include "fuzzfail.h"

#define FAIL(...) fuzz_fail("fuzz_acl", __VA_ARGS__)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

typedef struct RefNet
{
	int family;
	unsigned char addr[16];
	int prefix;
} RefNet;

static const unsigned char v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The reference parser. */
static bool
ref_parse(const char *text, RefNet *net)
{
	char addr[128];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t) (slash - text) : strlen(text);
	int bits;

	if (alen >= sizeof(addr) || strlen(text) >= 128 || *text == '\0')
		return false;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	memset(net, 0, sizeof(*net));
	if (inet_pton(AF_INET, addr, net->addr) == 1)
		net->family = AF_INET, bits = 32;
	else if (inet_pton(AF_INET6, addr, net->addr) == 1)
		net->family = AF_INET6, bits = 128;
	else
		return false;
	net->prefix = bits;
	if (slash)
	{
		/* strtol's syntax, whole: spaces, an optional sign, digits, nothing after */
		const char *d = slash + 1;
		bool neg = false;
		long n = 0;
		const char *digits;

		while (*d == ' ' || (*d >= '\t' && *d <= '\r'))
			d++;
		if (*d == '+' || *d == '-')
			neg = *d++ == '-';
		digits = d;
		for (; *d >= '0' && *d <= '9'; d++)
			n = n > 1000 ? n : n * 10 + (*d - '0');
		if (d == digits || *d != '\0' || (neg && n != 0) || n > bits)
			return false;
		net->prefix = (int) n;
	}
	if (net->family == AF_INET6 && net->prefix >= 96 && memcmp(net->addr, v4mapped_prefix, 12) == 0)
	{
		memmove(net->addr, net->addr + 12, 4);
		memset(net->addr + 4, 0, 12);
		net->family = AF_INET;
		net->prefix -= 96;
	}
	return true;
}

static bool
bit(const unsigned char *a, int i)
{
	return (a[i / 8] >> (7 - i % 8)) & 1;
}

static bool
ref_match(const RefNet *net, int family, const unsigned char *addr)
{
	if (net->family != family)
		return false;
	for (int i = 0; i < net->prefix; i++)
		if (bit(net->addr, i) != bit(addr, i))
			return false;
	return true;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_fail_init();
	return 0;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *in = (const char *) data;
	const char *at = NULL;
	RefNet nets[4];
	int nnets = 0;
	size_t pos = 0;

	/* an empty list each time */
	free(entries);
	entries = NULL;
	nentries = 0;

	for (size_t i = 0; i + 1 < size; i++)
		if (in[i] == '@' && (i == 0 || in[i - 1] == '\n'))
		{
			at = in + i + 1;
			break;
		}
	while (pos < (at ? (size_t) (at - 1 - in) : size) && nnets < 4)
	{
		size_t end = at ? (size_t) (at - 1 - in) : size;
		const char *nl = memchr(in + pos, '\n', end - pos);
		size_t len = nl ? (size_t) (nl - in - pos) : end - pos;
		char *cidr = strndup(in + pos, len);
		char err[256];
		RefNet net;
		bool ref_ok;
		bool ok;

		pos += len + 1;
		if (memchr(in + pos - len - 1, '\0', len))
		{
			free(cidr);
			continue; /* a command-line argument has no NUL */
		}
		ref_ok = ref_parse(cidr, &net);
		err[0] = '\0';
		ok = acl_add(cidr, err, sizeof(err));
		if (ok != ref_ok)
			FAIL("acl_add(\"%s\") %s, the reference %s", cidr, ok ? "accepted" : "refused",
				 ref_ok ? "accepts" : "refuses");
		if (!ok && err[0] == '\0')
			FAIL("acl_add refused \"%s\" without a message", cidr);
		if (ok)
			nets[nnets++] = net;
		free(cidr);
	}
	if (acl_count() != nnets)
		FAIL("acl_count() = %d, expected %d", acl_count(), nnets);

	for (const char *p = at; p && p + 17 <= in + size; p += 17)
	{
		struct sockaddr_storage ss;
		int family;
		unsigned char addr[16];
		bool expect = nnets == 0;
		char text[INET6_ADDRSTRLEN];
		char ref_text[INET6_ADDRSTRLEN];
		char small[8];

		memset(&ss, 0, sizeof(ss));
		if ((p[0] & 1) == 0)
		{
			struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;

			s4->sin_family = AF_INET;
			memcpy(&s4->sin_addr, p + 1, 4);
			family = AF_INET;
			memcpy(addr, p + 1, 4);
		}
		else
		{
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;

			s6->sin6_family = AF_INET6;
			memcpy(&s6->sin6_addr, p + 1, 16);
			if (memcmp(p + 1, v4mapped_prefix, 12) == 0)
			{
				family = AF_INET;
				memcpy(addr, p + 13, 4);
			}
			else
			{
				family = AF_INET6;
				memcpy(addr, p + 1, 16);
			}
		}
		for (int i = 0; i < nnets; i++)
			expect |= ref_match(&nets[i], family, addr);
		if (acl_allows((struct sockaddr *) &ss) != expect)
			FAIL("acl_allows = %d for a peer, the reference says %d", !expect, expect);

		sockaddr_text((struct sockaddr *) &ss, text, sizeof(text));
		if (inet_ntop(family, addr, ref_text, sizeof(ref_text)) == NULL)
			FAIL("inet_ntop");
		if (strcmp(text, ref_text) != 0)
			FAIL("sockaddr_text \"%s\", expected \"%s\"", text, ref_text);
		sockaddr_text((struct sockaddr *) &ss, small, sizeof(small));
		if (strlen(small) >= sizeof(small) ||
			(strlen(ref_text) < sizeof(small) ? strcmp(small, ref_text) != 0 : small[0] != '\0'))
			FAIL("sockaddr_text into 8 bytes: \"%s\" for \"%s\"", small, ref_text);
	}
	if (acl_allows(NULL) != (nnets == 0))
		FAIL("acl_allows(NULL) with %d entries", nnets);
	return 0;
}
