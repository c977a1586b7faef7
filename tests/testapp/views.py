"""Views used by the tests: each one exercises a way a request can write (or not)."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tests.testapp.models import Product


def nothing(request: HttpRequest) -> HttpResponse:
    """Writes nothing: the middleware must not look the user up."""
    return HttpResponse("nothing")


@csrf_exempt
def create_product(request: HttpRequest) -> JsonResponse:
    """A sync view writing a tracked model."""
    product = Product.objects.create(name=request.POST.get("name", "sync"), price=1)
    return JsonResponse({"pk": product.pk})


@csrf_exempt
async def acreate_product(request: HttpRequest) -> JsonResponse:
    """An async view creating a tracked model with the async ORM."""
    product = await Product.objects.acreate(name=request.POST.get("name", "async"), price=2)
    return JsonResponse({"pk": product.pk})


@csrf_exempt
async def asave_product(request: HttpRequest, pk: int) -> JsonResponse:
    """An async view loading and updating a tracked model with the async ORM."""
    product = await Product.objects.aget(pk=pk)
    product.price = request.POST.get("price", "9.99")
    await product.asave()
    return JsonResponse({"pk": product.pk})


class TokenProductView(APIView):
    """Django REST framework view: the user is only known after token authentication,
    which happens inside the view, long after the middleware ran."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request: Request) -> Response:
        product = Product.objects.create(name=request.data.get("name", "api"), price=3)
        return Response({"pk": product.pk}, status=201)
