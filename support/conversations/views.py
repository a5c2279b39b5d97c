from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static


def demo(request: HttpRequest) -> HttpResponse:
    """A stand-in customer website that embeds the widget with the same one tag a real site uses."""
    server_url = settings.TANDEM_PUBLIC_URL or f"{request.scheme}://{request.get_host()}"
    return render(
        request, "demo.html", {"server_url": server_url, "widget_src": server_url + static("tandem/widget.js")}
    )
