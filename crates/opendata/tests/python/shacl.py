"""Validates DCAT-AP documents with pySHACL against the DCAT-AP 3.0.1 shapes.
Usage: shacl.py SHAPES FORMAT FILE... (FORMAT: turtle or json-ld). Each file is
validated on its own. Prints the number of triples and exits non-zero, printing the
report, unless every file conforms (zero violations)."""

import sys

import pyshacl
from rdflib import Graph

shapes, fmt, files = sys.argv[1], sys.argv[2], sys.argv[3:]
triples = 0
for f in files:
    # Each document on its own: pages of a catalogue are read one at a time.
    data = Graph()
    data.parse(f, format=fmt)
    conforms, _, text = pyshacl.validate(
        data, shacl_graph=shapes, shacl_graph_format="turtle", allow_warnings=True)
    if not conforms:
        print(f)
        print(text)
        sys.exit(1)
    triples += len(data)
print(triples)
