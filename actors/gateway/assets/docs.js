// The interactive API documentation: Swagger UI over this gateway's /openapi.json.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    persistAuthorization: false,
    // No badge from validator.swagger.io: the page loads nothing from the internet.
    validatorUrl: null,
  });
});
