/*
 * acl.c: the client allowlist (--allow-ip CIDR, repeatable, IPv4 and IPv6), matched against
 * the TCP peer address only: X-Forwarded-For and other headers are never read.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct AclEntry
{
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network, host bits cleared */
	int prefix;
} AclEntry;

/* Filled at start, read-only afterwards: no lock. */
static AclEntry *entries;
static int nentries;

static void
mask_bits(unsigned char *addr, int nbytes, int prefix)
{
	int i;

	for (i = 0; i < nbytes; i++)
	{
		int bits = prefix - i * 8;

		if (bits >= 8)
			continue;
		addr[i] &= bits <= 0 ? 0 : (unsigned char) (0xff << (8 - bits));
	}
}

bool
acl_add(const char *cidr, char *err, size_t errlen)
{
	char text[128];
	char *slash;
	AclEntry e;
	int maxbits;
	AclEntry *grown;

	if (strlen(cidr) >= sizeof(text) || *cidr == '\0')
	{
		snprintf(err, errlen, "bad --allow-ip \"%s\": not an address or CIDR", cidr);
		return false;
	}
	strcpy(text, cidr);
	slash = strchr(text, '/');
	if (slash)
		*slash = '\0';
	memset(&e, 0, sizeof(e));
	if (inet_pton(AF_INET, text, e.addr) == 1)
		e.family = AF_INET, maxbits = 32;
	else if (inet_pton(AF_INET6, text, e.addr) == 1)
		e.family = AF_INET6, maxbits = 128;
	else
	{
		snprintf(err, errlen, "bad --allow-ip \"%s\": not an IPv4 or IPv6 address", cidr);
		return false;
	}
	e.prefix = maxbits;
	if (slash)
	{
		char *end;
		long n;

		n = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || n < 0 || n > maxbits)
		{
			snprintf(err, errlen, "bad --allow-ip \"%s\": the prefix length must be 0 to %d", cidr,
					 maxbits);
			return false;
		}
		e.prefix = (int) n;
	}
	/* an IPv4-mapped IPv6 network is an IPv4 network */
	if (e.family == AF_INET6 && e.prefix >= 96 && IN6_IS_ADDR_V4MAPPED((struct in6_addr *) e.addr))
	{
		memmove(e.addr, e.addr + 12, 4);
		memset(e.addr + 4, 0, 12);
		e.family = AF_INET;
		e.prefix -= 96;
	}
	mask_bits(e.addr, e.family == AF_INET ? 4 : 16, e.prefix);
	grown = realloc(entries, (nentries + 1) * sizeof(AclEntry));
	if (grown == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return false;
	}
	entries = grown;
	entries[nentries++] = e;
	return true;
}

int
acl_count(void)
{
	return nentries;
}

/* The peer as (family, bytes), IPv4-mapped IPv6 turned into IPv4. */
static bool
peer_bytes(const struct sockaddr *sa, int *family, unsigned char *addr)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET)
	{
		*family = AF_INET;
		memcpy(addr, &((const struct sockaddr_in *) sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6)
	{
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *) sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6))
		{
			*family = AF_INET;
			memcpy(addr, a6->s6_addr + 12, 4);
		}
		else
		{
			*family = AF_INET6;
			memcpy(addr, a6->s6_addr, 16);
		}
		return true;
	}
	return false;
}

bool
acl_allows(const struct sockaddr *sa)
{
	int family;
	unsigned char addr[16];
	int i;

	if (nentries == 0)
		return true;
	if (!peer_bytes(sa, &family, addr))
		return false;
	for (i = 0; i < nentries; i++)
	{
		unsigned char masked[16];
		int nbytes = family == AF_INET ? 4 : 16;

		if (entries[i].family != family)
			continue;
		memcpy(masked, addr, nbytes);
		mask_bits(masked, nbytes, entries[i].prefix);
		if (memcmp(masked, entries[i].addr, nbytes) == 0)
			return true;
	}
	return false;
}

void
sockaddr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
	int family;
	unsigned char addr[16];

	out[0] = '\0';
	if (!peer_bytes(sa, &family, addr))
		return;
	if (inet_ntop(family, addr, out, (socklen_t) outlen) == NULL)
		out[0] = '\0';
}
