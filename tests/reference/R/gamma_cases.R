# Gamma and inverse Gaussian GLMMs as lme4's glmer fits them (issue 13, item 2):
#   Rscript tests/reference/R/gamma_cases.R tests/reference/local
# The data are simulated here (set.seed) and written next to the fits. lme4's Gamma and
# inverse Gaussian GLMMs are themselves approximate: PIRLS ignores the dispersion, and the
# Laplace deviance plugs in dev / n as the dispersion (the family's aic()).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
set.seed(12)
n_g <- 20; n_per <- 10
g <- rep(sprintf("g%02d", 1:n_g), each = n_per)
x <- round(rnorm(n_g * n_per), 6)
b <- rnorm(n_g, 0, 0.4)
mu <- exp(1 + 0.3 * x + b[match(g, sprintf("g%02d", 1:n_g))])
y_gamma <- round(rgamma(length(mu), shape = 4, rate = 4 / mu), 6)
y_ig <- round(statmod_rinvgauss <- {  # inverse Gaussian by the Michael-Schucany-Haas method
  nu <- rnorm(length(mu)); lambda <- 8; yy <- nu^2
  xx <- mu + mu^2 * yy / (2 * lambda) - mu / (2 * lambda) * sqrt(4 * mu * lambda * yy + mu^2 * yy^2)
  ifelse(runif(length(mu)) <= mu / (mu + xx), xx, mu^2 / xx)
}, 6)
d <- data.frame(y_gamma = y_gamma, y_ig = y_ig, x = x, g = g)
write.csv(d, file.path(out, "gamma_data.csv"), row.names = FALSE)
cases <- list(
  list(name = "gamma_log", formula = y_gamma ~ x + (1 | g), family = Gamma("log")),
  list(name = "gamma_inverse", formula = y_gamma ~ x + (1 | g), family = Gamma("inverse")),
  list(name = "gamma_identity", formula = y_gamma ~ x + (1 | g), family = Gamma("identity")),
  list(name = "ig_log", formula = y_ig ~ x + (1 | g), family = inverse.gaussian("log"))
)
res <- list()
for (case in cases) {
  m <- tryCatch(glmer(case$formula, data = d, family = case$family),
                error = function(e) conditionMessage(e))
  if (is.character(m)) { res[[case$name]] <- list(error = m); next }
  vc <- as.data.frame(VarCorr(m))
  res[[case$name]] <- list(
    formula = paste(deparse(case$formula), collapse = " "),
    family = case$family$family, link = case$family$link,
    fixef = as.list(fixef(m)),
    std_error = as.numeric(sqrt(diag(as.matrix(vcov(m, use.hessian = FALSE))))),
    theta = as.numeric(getME(m, "theta")),
    sigma = sigma(m),                                  # sigma(m)
    sdcor = vc$sdcor, vcov = vc$vcov,                  # as.data.frame(VarCorr(m))
    logLik = as.numeric(logLik(m)), df = attr(logLik(m), "df"),
    deviance = deviance(m),
    cmp = as.list(getME(m, "devcomp")$cmp),
    fitted = as.numeric(fitted(m))
  )
}
res$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "gamma.json"))
