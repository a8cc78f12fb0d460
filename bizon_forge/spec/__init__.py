"""Specs: what the agent knows about a connector before any code exists, one module per kind.

common: what both kinds share (fields, names, the parser, the store); destination: DestinationSpec and its checks;
source: SourceSpec and its checks.
"""

from bizon_forge.spec import destination, source

KINDS = {kind.name: kind for kind in (destination.KIND, source.KIND)}
