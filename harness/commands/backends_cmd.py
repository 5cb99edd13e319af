"""``s2s-bench backends``: list registered backends, whether they stream, whether weights are found, options."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("backends", help="list backends, their options and whether weights are present")
    p.add_argument("--verbose", "-v", action="store_true", help="show every option with its help text")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..registry import backend_classes

    classes = {cls.name: cls for cls in backend_classes().values()}
    rows = []
    for name in sorted(classes):
        cls = classes[name]
        present, detail = cls.weights_status()
        weights = "n/a" if present is None else ("yes" if present else "NO")
        rows.append((name, "yes" if cls.streaming else "no", weights, cls.description, detail, cls))
    width = max(len(r[0]) for r in rows)
    print(f"{'backend':<{width}}  streams  weights  description")
    for name, streams, weights, desc, detail, cls in rows:
        print(f"{name:<{width}}  {streams:<7}  {weights:<7}  {desc}")
        if weights == "NO":
            print(f"{'':<{width}}  {'':<7}  {'':<7}  ({detail})")
        opts = ", ".join(f"{k}={o.default}" for k, o in cls.options.items())
        if args.verbose:
            for key, opt in cls.options.items():
                choices = f" [{'|'.join(map(str, opt.choices))}]" if opt.choices else ""
                print(f"{'':<{width}}    {key}={opt.default} ({opt.type.__name__}{choices}): {opt.help}")
        elif opts:
            print(f"{'':<{width}}  options: {opts}")
    return 0
