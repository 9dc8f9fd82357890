/* Writing our own Prometheus text exposition: escaped label values and numbers in the format's
 * spelling, appended to a struct rt_buf.
 *
 * Ownership: the caller owns <b> and every input; these functions only append to <b> (growing it
 * through rt_buf with no cap, like rt_buf_printf, since our own pages are small and trusted). */
#ifndef RT_PROM_WRITE_H
#define RT_PROM_WRITE_H

#include "buf.h"
#include "str.h"

/* Appends <v> escaped for use between the quotes of a label value: backslash, double quote and
 * newline become \\, \" and \n. Bytes that are not valid UTF-8 (the format requires UTF-8) are
 * each replaced by U+FFFD, so the page always parses. */
void rt_prom_write_label_value(struct rt_buf *b, struct rt_str v);

/* Appends <v> as a sample value: "+Inf", "-Inf", "NaN", or else the shortest decimal that reads
 * back as exactly <v> ("0.1", "3", "1e+10", "2.5e-05"), independent of the process locale. */
void rt_prom_write_double(struct rt_buf *b, double v);

/* Appends HELP text <v> escaped as that line needs: backslash and newline become \\ and \n;
 * invalid UTF-8 bytes become U+FFFD. */
void rt_prom_write_help(struct rt_buf *b, struct rt_str v);

#endif
