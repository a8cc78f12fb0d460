"""The cold-start floor: a bare MCPServer with one tool, spoken to over stdio like bizon-forge."""

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("bare")


@mcp.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


if __name__ == "__main__":
    mcp.run()
