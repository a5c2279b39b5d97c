import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static

from chatbot.small import model as small_model


def demo(request: HttpRequest) -> HttpResponse:
    """A stand-in customer website that embeds the widget with the same one tag a real site uses."""
    server_url = settings.TANDEM_PUBLIC_URL or f"{request.scheme}://{request.get_host()}"
    return render(
        request, "demo.html", {"server_url": server_url, "widget_src": server_url + static("tandem/widget.js")}
    )


def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and start-up scripts: 200 once this process answers with the small model."""
    ready = small_model.warmed_up
    return JsonResponse(
        # The process id tells the run command's start-up check which of several processes answered.
        {"status": "ok" if ready else "starting", "small_model": small_model.current_version(), "pid": os.getpid()},
        status=200 if ready else 503,
    )
