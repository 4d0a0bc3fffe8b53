/*
 * report_html.c: the page of `plexburst report --html FILE`: what each night brought, as plots a
 * person would rather look at than read. One self-contained HTML file: inline CSS, inline SVG
 * drawn here, no script, no font, image or style fetched. Every string from a record or the
 * command line is escaped. Plots (oldest night left): bytes over the home link per night against
 * whole archives of the DB and of the library (log scale), cloud minutes and cost, Plex's
 * downtime, items and analyses added (stacked); then the new titles of the last nights and a
 * table of the nights.
 * Role: cli (presentation of pb_run_status, plexburst/run.h). Prerequisites: none beyond libc.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report_html.h"

#define W             600 /* plot width */
#define H             260 /* plot height */
#define PAD_L         64
#define PAD_R         16
#define PAD_T         16
#define PAD_B         52
#define C_UP          "#4e79a7"
#define C_DOWN        "#f28e2b"
#define C_CLOUD       "#59a14f"
#define C_OFF         "#e15759"
#define C_ITEMS       "#76b7b2"
#define C_MARK        "#edc948"
#define C_LOUD        "#b07aa1"
#define C_SONIC       "#ff9da7"
#define C_PREV        "#9c755f"
#define C_MEDIA       "#8cd17d"
#define C_ARCH        "#333333"
#define TITLES_NIGHTS 7 /* nights whose new titles are listed */

typedef struct page {
    FILE *f;
    int err;
    const cli_report_input *in;
    const pb_run_record *run[PB_STATUS_MAX_RUNS]; /* oldest first */
    size_t n;
} page;

static void out(page *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(page *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vfprintf(p->f, fmt, ap) < 0)
        p->err = 1;
    va_end(ap);
}

/* Writes `s` escaped for HTML text and attribute values. */
static void esc(page *p, const char *s)
{
    for (; s && *s; s++) {
        const char *e = *s == '&'    ? "&amp;"
                        : *s == '<'  ? "&lt;"
                        : *s == '>'  ? "&gt;"
                        : *s == '"'  ? "&quot;"
                        : *s == '\'' ? "&#39;"
                                     : NULL;
        if (e ? fputs(e, p->f) < 0 : fputc(*s, p->f) == EOF)
            p->err = 1;
    }
}

/* A short size for axis ticks and labels: "512 B", "32 KiB", "1.5 MiB". */
static const char *short_bytes(char *buf, size_t cap, double v)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(buf, cap, v < 10 && i ? "%.1f %s" : "%.0f %s", v, u[i]);
    return buf;
}

/* "12-07" under a bar: the night's month and day (time of day when two share a day). */
static void night_label(page *p, size_t i, char *buf, size_t cap)
{
    char d[32], prev[32] = "", next[32] = "";
    cli_record_date(d, sizeof(d), p->run[i]->started, 0);
    if (i > 0)
        cli_record_date(prev, sizeof(prev), p->run[i - 1]->started, 0);
    if (i + 1 < p->n)
        cli_record_date(next, sizeof(next), p->run[i + 1]->started, 0);
    int same = (prev[0] && !strncmp(prev, d, 10)) || (next[0] && !strncmp(next, d, 10));
    if (strlen(d) >= 16)
        snprintf(buf, cap, "%.5s%s%.5s", d + 5, same ? " " : "", same ? d + 11 : "");
    else
        snprintf(buf, cap, "%s", d);
}

/* The slot of night i on the x axis: its centre and the bar width. */
static double slot_x(const page *p, size_t i, double *bw)
{
    double plot = W - PAD_L - PAD_R, slot = plot / (double)(p->n ? p->n : 1);
    *bw = slot * 0.62 > 48 ? 48 : slot * 0.62;
    return PAD_L + slot * ((double)i + 0.5);
}

static void svg_open(page *p, const char *id, const char *label)
{
    out(p,
        "<svg id=\"%s\" class=\"plot\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
        "role=\"img\" aria-label=\"",
        id, W, H, W, H);
    esc(p, label);
    out(p, "\">\n");
}

/* The x axis with the nights' labels (dry runs marked) and the plot's frame. */
static void x_axis(page *p)
{
    out(p, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"axis\"/>\n", PAD_L, H - PAD_B,
        W - PAD_R, H - PAD_B);
    size_t step = p->n > 16 ? 3 : p->n > 8 ? 2 : 1;
    for (size_t i = 0; i < p->n; i++) {
        double bw, x = slot_x(p, i, &bw);
        if (i % step == 0 || i + 1 == p->n) {
            char lab[40];
            night_label(p, i, lab, sizeof(lab));
            out(p, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">", x, H - PAD_B + 16);
            esc(p, lab);
            out(p, "</text>\n");
        }
        if (p->run[i]->dry_run) /* marked whether its date is written or not */
            out(p, "<text x=\"%.1f\" y=\"%d\" class=\"xl dry\">dry run</text>\n", x,
                H - PAD_B + 30);
    }
}

/* A linear y axis for values up to `max` with ~4 round ticks; returns the scale's top. */
static double y_linear(page *p, double max, const char *unit)
{
    if (max <= 0)
        max = 1;
    double mag = pow(10, floor(log10(max / 4))), step = mag;
    if (max / step > 8)
        step = 2 * mag;
    if (max / step > 8)
        step = 5 * mag;
    double top = ceil(max / step) * step;
    for (double v = 0; v <= top + step / 2; v += step) {
        double y = H - PAD_B - (H - PAD_B - PAD_T) * v / top;
        out(p, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"grid\"/>\n", PAD_L, y,
            W - PAD_R, y);
        out(p, "<text x=\"%d\" y=\"%.1f\" class=\"yl\">%g%s</text>\n", PAD_L - 6, y + 4, v, unit);
    }
    return top;
}

static double y_of(double v, double top)
{
    return H - PAD_B - (H - PAD_B - PAD_T) * (v > top ? 1 : v / top);
}

/* A bar from y0 up to y1 (at least 2 px when the value is not zero). */
static void bar(page *p, double x, double w, double y0, double y1, const char *color, int nonzero,
                const char *tip)
{
    if (nonzero && y0 - y1 < 2)
        y1 = y0 - 2;
    if (y0 - y1 <= 0)
        return;
    out(p, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x, y1,
        w, y0 - y1, color);
    esc(p, tip);
    out(p, "</title></rect>\n");
}

static void legend(page *p, const char *const *names, const char *const *colors, size_t n)
{
    out(p, "<div class=\"legend\">");
    for (size_t i = 0; i < n; i++) {
        out(p, "<span><i style=\"background:%s\"></i>", colors[i]);
        esc(p, names[i]);
        out(p, "</span>");
    }
    out(p, "</div>\n");
}

/* Bytes per night, up and down, on a log scale, against the whole archives. */
static void plot_bytes(page *p)
{
    const cli_report_input *in = p->in;
    double max = 1024, lo = 1024;
    for (size_t i = 0; i < p->n; i++) {
        max = fmax(max, (double)p->run[i]->bytes_up);
        max = fmax(max, (double)p->run[i]->bytes_down);
    }
    double arch_db = 0, arch_lib = 0;
    if (in->have_archives) {
        arch_db = (double)in->archive_db;
        arch_lib = (double)in->archive_library;
    } else if (p->n && p->run[p->n - 1]->snapshot_raw)
        arch_db = (double)p->run[p->n - 1]->snapshot_raw;
    max = fmax(max, fmax(arch_db, arch_lib));
    double top = log2(max) + 1, bottom = log2(lo), span = top - bottom;
    out(p, "<section class=\"card\"><h2>Bytes over the home link per night</h2>\n");
    out(p, "<p class=\"sub\">log scale; the dashed lines are what shipping the whole thing each "
           "night would cost</p>\n");
    svg_open(p, "plot-bytes", "bytes per night against whole archives");
    for (double e = ceil(bottom / 5) * 5; e <= top; e += 5) {
        double y = H - PAD_B - (H - PAD_B - PAD_T) * (e - bottom) / span;
        char b[32];
        out(p, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"grid\"/>\n", PAD_L, y,
            W - PAD_R, y);
        out(p, "<text x=\"%d\" y=\"%.1f\" class=\"yl\">%s</text>\n", PAD_L - 6, y + 4,
            short_bytes(b, sizeof(b), exp2(e)));
    }
    for (size_t i = 0; i < p->n; i++) {
        const pb_run_record *r = p->run[i];
        double bw, x = slot_x(p, i, &bw), y0 = H - PAD_B;
        char tip[96], b[32];
        double vals[2] = {(double)r->bytes_up, (double)r->bytes_down};
        const char *col[2] = {C_UP, C_DOWN}, *what[2] = {"up", "down"};
        for (int k = 0; k < 2; k++) {
            double v = vals[k] < lo ? lo : vals[k];
            double y = H - PAD_B - (H - PAD_B - PAD_T) * (log2(v) - bottom) / span;
            snprintf(tip, sizeof(tip), "%s: %s %s", r->run_id, short_bytes(b, sizeof(b), vals[k]),
                     what[k]);
            bar(p, x - bw / 2 + k * bw / 2, bw / 2, y0, y, col[k], vals[k] > 0, tip);
        }
    }
    const char *lname[2] = {in->have_archives ? "whole DB archive (zstd)" : "whole DB pair (raw)",
                            "whole library archive (zstd)"};
    double lv[2] = {arch_db, arch_lib};
    const char *lcol[2] = {C_UP, C_DOWN};
    for (int k = 0; k < 2; k++) {
        if (lv[k] <= 0)
            continue;
        double y = H - PAD_B - (H - PAD_B - PAD_T) * (log2(lv[k]) - bottom) / span;
        char b[32];
        out(p, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"arch\" stroke=\"%s\"/>\n",
            PAD_L, y, W - PAD_R, y, lcol[k]);
        out(p, "<text x=\"%d\" y=\"%.1f\" class=\"al\">", W - PAD_R - 4, y - 5);
        esc(p, lname[k]);
        out(p, ": %s</text>\n", short_bytes(b, sizeof(b), lv[k]));
    }
    x_axis(p);
    out(p, "</svg>\n");
    const char *names[] = {"up (row changeset, answer)", "down (bundle)"};
    const char *colors[] = {C_UP, C_DOWN};
    legend(p, names, colors, 2);
    out(p, "</section>\n");
}

/* Cloud minutes per night, the cost written above each bar. */
static void plot_cloud(page *p)
{
    double max = 0, cost = 0;
    for (size_t i = 0; i < p->n; i++) {
        max = fmax(max, p->run[i]->cloud.seconds / 60);
        cost += p->run[i]->cloud.cost;
    }
    out(p, "<section class=\"card\"><h2>Cloud minutes and cost per night</h2>\n");
    out(p, "<p class=\"sub\">%s</p>\n",
        cost > 0 ? "the cost in EUR above each bar, at the instance's hourly price"
                 : "no cost recorded: a local or ssh cloud");
    svg_open(p, "plot-cloud", "cloud minutes and cost per night");
    double top = y_linear(p, max, " min");
    for (size_t i = 0; i < p->n; i++) {
        const pb_run_record *r = p->run[i];
        double bw, x = slot_x(p, i, &bw), m = r->cloud.seconds / 60, y = y_of(m, top);
        char tip[96];
        snprintf(tip, sizeof(tip), "%s: %.1f min, %.4f EUR", r->run_id, m, r->cloud.cost);
        bar(p, x - bw / 2, bw, H - PAD_B, y, C_CLOUD, m > 0, tip);
        if (r->cloud.cost > 0)
            out(p, "<text x=\"%.1f\" y=\"%.1f\" class=\"vl\">%.2f €</text>\n", x, y - 4,
                r->cloud.cost);
    }
    x_axis(p);
    out(p, "</svg>\n");
    out(p, "<p class=\"sub\">total: %.2f EUR over %zu nights</p>\n</section>\n", cost, p->n);
}

/* Plex's downtime per night (stopped for the apply). */
static void plot_downtime(page *p)
{
    double max = 0;
    for (size_t i = 0; i < p->n; i++)
        max = fmax(max, p->run[i]->ms_downtime / 1000);
    out(p, "<section class=\"card\"><h2>Plex downtime per night</h2>\n");
    out(p, "<p class=\"sub\">seconds the home Plex was stopped for the apply</p>\n");
    svg_open(p, "plot-downtime", "Plex downtime per night");
    double top = y_linear(p, max, " s");
    for (size_t i = 0; i < p->n; i++) {
        const pb_run_record *r = p->run[i];
        double bw, x = slot_x(p, i, &bw), s = r->ms_downtime / 1000;
        char tip[96];
        snprintf(tip, sizeof(tip), "%s: %.2f s", r->run_id, s);
        bar(p, x - bw / 2, bw, H - PAD_B, y_of(s, top), C_OFF, s > 0, tip);
    }
    x_axis(p);
    out(p, "</svg>\n</section>\n");
}

/* Items and analyses added per night, stacked. */
static void plot_added(page *p)
{
    const char *names[] = {"new items",    "markers",  "loudness",
                           "sonic tracks", "previews", "media analysed"};
    const char *colors[] = {C_ITEMS, C_MARK, C_LOUD, C_SONIC, C_PREV, C_MEDIA};
    double max = 0;
    for (size_t i = 0; i < p->n; i++)
        max = fmax(max, (double)(p->run[i]->new_items + cli_record_analyses(p->run[i])));
    out(p, "<section class=\"card\"><h2>Items and analyses added per night</h2>\n");
    out(p, "<p class=\"sub\">what the cloud's Plex did while the home slept</p>\n");
    svg_open(p, "plot-added", "items and analyses added per night");
    double top = y_linear(p, max, "");
    for (size_t i = 0; i < p->n; i++) {
        const pb_run_record *r = p->run[i];
        const pb_plex_analysis *a = &r->analysis;
        double v[6] = {(double)r->new_items,      (double)a->markers,
                       (double)a->loudness_items, (double)a->sonic_tracks,
                       (double)a->preview_parts,  (double)a->media_analyzed};
        double bw, x = slot_x(p, i, &bw), acc = 0;
        for (int k = 0; k < 6; k++) {
            if (v[k] <= 0)
                continue;
            char tip[128];
            snprintf(tip, sizeof(tip), "%s: %.0f %s", r->run_id, v[k], names[k]);
            double y0 = y_of(acc, top);
            acc += v[k];
            bar(p, x - bw / 2, bw, y0, y_of(acc, top), colors[k], 1, tip);
        }
        if (!r->have_summary)
            out(p, "<text x=\"%.1f\" y=\"%d\" class=\"vl\">n/a</text>\n", x, H - PAD_B - 6);
    }
    x_axis(p);
    out(p, "</svg>\n");
    legend(p, names, colors, 6);
    out(p, "</section>\n");
}

/* The new titles of the last nights that brought some, newest first. */
static void new_titles(page *p)
{
    out(p, "<section class=\"card wide\"><h2>New titles of the last nights</h2>\n");
    size_t shown = 0;
    for (size_t k = p->n; k-- > 0 && shown < TITLES_NIGHTS;) {
        const pb_run_record *r = p->run[k];
        if (!r->ntitles)
            continue;
        char d[32];
        shown++;
        out(p, "<h3>%s", cli_record_date(d, sizeof(d), r->started, 0));
        out(p, " <span class=\"muted\">");
        esc(p, r->run_id);
        out(p, "%s: %llu new items</span></h3>\n<ul class=\"titles\">\n",
            r->dry_run ? ", dry run (not applied)" : "", (unsigned long long)r->new_items);
        for (size_t i = 0; i < r->ntitles; i++) {
            out(p, "<li><span class=\"kind\">");
            esc(p, r->titles[i].type);
            out(p, "</span> ");
            esc(p, r->titles[i].title);
            if (r->titles[i].section[0]) {
                out(p, " <span class=\"muted\">");
                esc(p, r->titles[i].section);
                out(p, "</span>");
            }
            out(p, "</li>\n");
        }
        if (r->new_items > r->ntitles)
            out(p, "<li class=\"muted\">and %llu more</li>\n",
                (unsigned long long)(r->new_items - r->ntitles));
        out(p, "</ul>\n");
    }
    if (!shown)
        out(p, "<p class=\"muted\">no new titles in these nights</p>\n");
    out(p, "</section>\n");
}

/* The nights as a table, newest first. */
static void nights_table(page *p)
{
    out(p, "<section class=\"card wide\"><h2>The nights</h2>\n<table>\n<tr><th>date</th>"
           "<th>run</th><th>mode</th><th>state</th><th>up</th><th>down</th><th>took</th>"
           "<th>cloud</th><th>cost</th><th>Plex off</th><th>items</th><th>analyses</th></tr>\n");
    for (size_t k = p->n; k-- > 0;) {
        const pb_run_record *r = p->run[k];
        char d[32], b1[32], b2[32];
        out(p, "<tr%s><td>%s</td><td class=\"mono\">", r->dry_run ? " class=\"dryrow\"" : "",
            cli_record_date(d, sizeof(d), r->started, 0));
        esc(p, r->run_id);
        out(p, "</td><td>");
        esc(p, r->mode);
        if (r->dry_run)
            out(p, " <span class=\"tag\">dry run</span>");
        out(p, "</td><td class=\"st-%s\">",
            !strcmp(r->state, "ok")        ? "ok"
            : !strcmp(r->state, "running") ? "run"
                                           : "bad");
        esc(p, r->state);
        if (r->error[0]) {
            out(p, " <span class=\"muted\" title=\"");
            esc(p, r->error);
            out(p, "\">(why?)</span>");
        }
        out(p,
            "</td><td>%s</td><td>%s</td><td>%.1f s</td><td>%.1f min</td><td>%.2f €</td>"
            "<td>%.2f s</td>",
            short_bytes(b1, sizeof(b1), (double)r->bytes_up),
            short_bytes(b2, sizeof(b2), (double)r->bytes_down), r->ms_total / 1000,
            r->cloud.seconds / 60, r->cloud.cost, r->ms_downtime / 1000);
        if (r->have_summary)
            out(p, "<td>%llu</td><td>%llu</td></tr>\n", (unsigned long long)r->new_items,
                (unsigned long long)cli_record_analyses(r));
        else
            out(p, "<td>-</td><td>-</td></tr>\n");
    }
    out(p, "</table>\n</section>\n");
}

static const char css[] =
    "*{box-sizing:border-box}"
    "body{margin:0;padding:24px 32px;background:#f4f5f7;color:#1f2328;"
    "font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}"
    "header h1{margin:0 0 4px;font-size:24px}"
    "header p{margin:0;color:#59636e}"
    ".kpis{display:flex;flex-wrap:wrap;gap:12px;margin:18px 0}"
    ".kpi{flex:1 1 120px;background:#fff;border-radius:10px;padding:10px 14px;"
    "box-shadow:0 1px 3px #0002}"
    ".kpi b{display:block;font-size:20px}.kpi span{color:#59636e;font-size:12px}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(640px,1fr));gap:18px}"
    ".card{background:#fff;border-radius:10px;padding:14px 18px;box-shadow:0 1px 3px #0002}"
    ".card.wide{grid-column:1/-1}"
    ".card h2{margin:0;font-size:16px}.card h3{margin:12px 0 4px;font-size:14px}"
    ".sub{margin:2px 0 6px;color:#59636e;font-size:12px}"
    "svg.plot{max-width:100%;height:auto;display:block}"
    "svg .axis{stroke:#59636e;stroke-width:1}"
    "svg .grid{stroke:#e4e7eb;stroke-width:1}"
    "svg .arch{stroke-width:2;stroke-dasharray:6 4}"
    "svg text{font:11px system-ui,'DejaVu Sans',sans-serif;fill:#424a53}"
    "svg .yl{text-anchor:end}svg .xl{text-anchor:middle}svg .vl{text-anchor:middle}"
    "svg .al{text-anchor:end;font-weight:600}svg .dry{fill:#b35900;font-style:italic}"
    "svg rect{shape-rendering:crispEdges}"
    ".legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;color:#424a53}"
    ".legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;"
    "vertical-align:-1px}"
    "ul.titles{columns:2 320px;margin:4px 0 8px;padding-left:18px}"
    ".kind{display:inline-block;min-width:58px;color:#59636e;font-size:12px}"
    ".muted{color:#6e7781}.mono{font-family:ui-monospace,'DejaVu Sans Mono',monospace;"
    "font-size:12px}"
    "table{border-collapse:collapse;width:100%;font-size:13px}"
    "th,td{padding:5px 8px;border-bottom:1px solid #e4e7eb;text-align:right;white-space:nowrap}"
    "th:nth-child(-n+4),td:nth-child(-n+4){text-align:left}"
    "tr.dryrow{background:#fff8e6}.tag{background:#ffe1b3;color:#7a4100;border-radius:4px;"
    "padding:0 5px;font-size:11px}"
    ".st-ok{color:#1a7f37}.st-bad{color:#cf222e}.st-run{color:#9a6700}"
    "footer{margin-top:18px;color:#6e7781;font-size:12px}";

/* The title, the data dir and a few totals. */
static void head(page *p)
{
    const cli_report_input *in = p->in;
    char d[32], b[32];
    out(p,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>plexburst: what each night brought</title>\n<style>%s</style>\n</head>\n"
        "<body>\n<header><h1>What each night brought</h1>\n<p>",
        css);
    esc(p, in->plex_dir);
    out(p, " &middot; %zu nights &middot; generated %s</p></header>\n", p->n,
        cli_record_date(d, sizeof(d), in->generated, 0));
    uint64_t up = 0, down = 0, items = 0, an = 0;
    double cost = 0, off = 0;
    size_t ok = 0, dry = 0;
    for (size_t i = 0; i < p->n; i++) {
        up += p->run[i]->bytes_up;
        down += p->run[i]->bytes_down;
        items += p->run[i]->new_items;
        an += cli_record_analyses(p->run[i]);
        cost += p->run[i]->cloud.cost;
        off += p->run[i]->ms_downtime / 1000;
        ok += !strcmp(p->run[i]->state, "ok");
        dry += p->run[i]->dry_run != 0;
    }
    out(p, "<div class=\"kpis\">");
    out(p, "<div class=\"kpi\"><b>%zu / %zu</b><span>nights ok, %zu dry run%s</span></div>", ok,
        p->n, dry, dry == 1 ? "" : "s");
    out(p, "<div class=\"kpi\"><b>%s</b><span>sent up</span></div>",
        short_bytes(b, sizeof(b), (double)up));
    out(p, "<div class=\"kpi\"><b>%s</b><span>brought down</span></div>",
        short_bytes(b, sizeof(b), (double)down));
    if (in->have_archives) {
        double whole = (double)(in->archive_db + in->archive_library) * (double)p->n;
        out(p, "<div class=\"kpi\"><b>%s</b><span>whole archives would have moved</span></div>",
            short_bytes(b, sizeof(b), whole));
    }
    out(p, "<div class=\"kpi\"><b>%llu</b><span>items added</span></div>",
        (unsigned long long)items);
    out(p, "<div class=\"kpi\"><b>%llu</b><span>analyses added</span></div>",
        (unsigned long long)an);
    out(p, "<div class=\"kpi\"><b>%.1f s</b><span>Plex downtime</span></div>", off);
    out(p, "<div class=\"kpi\"><b>%.2f €</b><span>cloud cost</span></div>", cost);
    out(p, "</div>\n");
}

int cli_report_html(FILE *f, const cli_report_input *in)
{
    page p = {.f = f, .in = in};
    const pb_run_status *s = in->status;
    size_t n = s->nruns < in->nights ? s->nruns : in->nights;
    for (size_t i = 0; i < n; i++)
        p.run[i] = &s->runs[n - 1 - i];
    p.n = n;
    head(&p);
    if (!n)
        out(&p, "<section class=\"card wide\"><h2>No runs yet</h2><p>run plexburst bootstrap, "
                "then plexburst sync every night</p></section>\n");
    else {
        out(&p, "<div class=\"grid\">\n");
        plot_bytes(&p);
        plot_cloud(&p);
        plot_downtime(&p);
        plot_added(&p);
        new_titles(&p);
        nights_table(&p);
        out(&p, "</div>\n");
    }
    out(&p, "<footer>plexburst %s &middot; one file, nothing fetched</footer>\n</body>\n</html>\n",
        pb_version());
    return p.err || ferror(f) ? -1 : 0;
}
