#!/usr/bin/env python3
"""Draws docs/scaling.csv (from scripts/scaling.sh) as one SVG of four charts: throughput and
p99 latency against clients (256-byte values), and against value size (64 clients), for every
system in the file. Python 3 only, no plotting library."""
import csv
import math
import sys

COLOURS = ["#3b6fb6", "#d93025", "#188038", "#8e44ad", "#e8710a"]


def log_ticks(low, high):
    ticks = []
    exponent = math.floor(math.log10(low))
    while 10 ** exponent <= high * 1.0001:
        for factor in (1, 2, 5):
            value = factor * 10 ** exponent
            if low * 0.9999 <= value <= high * 1.0001:
                ticks.append(value)
        exponent += 1
    return ticks


def nice_ticks(high, count=5):
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1, 2, 5, 10) if f * power >= raw)
    return [i * step for i in range(0, int(high / step) + 2) if i * step <= high * 1.05]


def label(value):
    if value >= 1024 and value % 1024 == 0:
        return f"{value // 1024} KiB" if value < 1 << 20 else f"{value >> 20} MiB"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def chart(x0, y0, width, height, title, series, x_label, y_label, log_y, x_ticks, x_format):
    parts = [f'<text x="{x0 + width / 2}" y="{y0 - 10}" text-anchor="middle" font-weight="600">{title}</text>']
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points if y > 0]
    if not xs or not ys:
        return "".join(parts)
    x_low, x_high = min(xs), max(xs)
    if log_y:
        y_low, y_high = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))
        y_ticks = log_ticks(y_low, y_high)
    else:
        y_low, y_high = 0, max(ys) * 1.1
        y_ticks = nice_ticks(y_high)
        y_high = max(y_high, y_ticks[-1])

    def px(x):
        return x0 + (math.log(x) - math.log(x_low)) / max(1e-9, math.log(x_high) - math.log(x_low)) * width

    def py(y):
        if log_y:
            return y0 + height - (math.log(y) - math.log(y_low)) / (math.log(y_high) - math.log(y_low)) * height
        return y0 + height - (y - y_low) / (y_high - y_low) * height

    parts.append(f'<rect x="{x0}" y="{y0}" width="{width}" height="{height}" fill="none" stroke="#c9ced8"/>')
    for tick in y_ticks:
        y = py(tick)
        parts.append(f'<line x1="{x0}" x2="{x0 + width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f5"/>')
        parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{label(tick)}</text>')
    for tick in x_ticks:
        x = px(tick)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y0 + height}" stroke="#eef0f5"/>')
        parts.append(f'<text x="{x:.1f}" y="{y0 + height + 16}" text-anchor="middle" class="tick">{x_format(tick)}</text>')
    parts.append(f'<text x="{x0 + width / 2}" y="{y0 + height + 34}" text-anchor="middle" class="axis">{x_label}</text>')
    parts.append(f'<text transform="translate({x0 - 52},{y0 + height / 2}) rotate(-90)" text-anchor="middle" class="axis">{y_label}</text>')
    for index, (name, points) in enumerate(sorted(series.items())):
        colour = COLOURS[index % len(COLOURS)]
        points = sorted(p for p in points if p[1] > 0)
        path = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(points))
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in points:
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"><title>{name}: {y:g} at {x_format(x)}</title></circle>')
    return "".join(parts)


def main():
    source, target = sys.argv[1], sys.argv[2]
    with open(source) as handle:
        rows = list(csv.DictReader(handle))
    systems = sorted({row["system"] for row in rows})

    def series(filter_key, filter_value, x_key, y_key):
        result = {}
        for system in systems:
            points = {}
            for row in rows:
                if row["system"] == system and int(row[filter_key]) == filter_value:
                    points[int(row[x_key])] = float(row[y_key])
            result[system] = sorted(points.items())
        return result

    width, height = 380, 230
    charts = [
        (90, 60, "Throughput against clients (256-byte values)", series("value_bytes", 256, "clients", "ops_per_second"),
         "concurrent clients", "puts per second", False, [1, 4, 16, 64, 256], label),
        (600, 60, "p99 latency against clients (256-byte values)", series("value_bytes", 256, "clients", "p99_ms"),
         "concurrent clients", "p99 latency, ms", True, [1, 4, 16, 64, 256], label),
        (90, 370, "Throughput against value size (64 clients)", series("clients", 64, "value_bytes", "ops_per_second"),
         "value size", "puts per second", False, [64, 256, 1024, 4096, 16384, 65536], label),
        (600, 370, "p99 latency against value size (64 clients)", series("clients", 64, "value_bytes", "p99_ms"),
         "value size", "p99 latency, ms", True, [64, 256, 1024, 4096, 16384, 65536], label),
    ]
    body = [chart(x, y, width, height, title, data, xl, yl, log_y, ticks, fmt) for x, y, title, data, xl, yl, log_y, ticks, fmt in charts]
    legend = []
    for index, system in enumerate(systems):
        colour = COLOURS[index % len(COLOURS)]
        legend.append(f'<rect x="{90 + index * 180}" y="18" width="14" height="4" fill="{colour}"/>'
                      f'<text x="{110 + index * 180}" y="24">{system}</text>')
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="1020" height="680" font-family="system-ui, sans-serif" font-size="12">'
        '<style>.tick{fill:#6b7383;font-size:10px}.axis{fill:#1d2430}</style>'
        '<rect width="100%" height="100%" fill="#fff"/>' + "".join(legend) + "".join(body) + "</svg>\n"
    )
    with open(target, "w") as handle:
        handle.write(svg)


if __name__ == "__main__":
    main()
