/*
 * hexv.h: the value of a hexadecimal digit, for the harnesses' reference decoders (written
 * from the documentation, not from the code under test, so they keep their own).
 */
#ifndef HEXV_H
#define HEXV_H

static inline int
fuzz_hexv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
