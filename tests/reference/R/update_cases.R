# lme4's update() and refit() (issue 13, item 7):
#   Rscript tests/reference/R/update_cases.R tests/reference/local
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
m1 <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
m0 <- update(m1, . ~ . - Days)
set.seed(3)
y <- simulate(m1)[[1]]
m2 <- refit(m1, y)
# lme4 1.1-31's refit() of this REML fit ends 4.19 below the REML optimum that a fresh
# lmer() on the same response finds; mixedtf's refit is the fresh fit, kept here too
fresh <- lmer(Reaction ~ Days + (Days | Subject), transform(sleepstudy, Reaction = y))
g1 <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
set.seed(4)
s <- simulate(g1)[[1]]                                  # an n x 2 matrix of counts
g2 <- refit(g1, s)
res <- list(
  update_drop_days = list(call = "update(m1, . ~ . - Days)", fixef = as.list(fixef(m0)),
                          logLik = as.numeric(logLik(m0))),
  refit_sleep = list(call = "refit(m1, simulate(m1, seed 3))", newresp = y,
                     fixef = as.list(fixef(m2)), theta = as.numeric(getME(m2, "theta")),
                     logLik = as.numeric(logLik(m2)),
                     fresh_fixef = as.list(fixef(fresh)),
                     fresh_theta = as.numeric(getME(fresh, "theta")),
                     fresh_logLik = as.numeric(logLik(fresh))),
  refit_cbpp = list(call = "refit(g1, simulate(g1, seed 4))", newresp = unname(s),
                    fixef = as.list(fixef(g2)), theta = as.numeric(getME(g2, "theta")),
                    logLik = as.numeric(logLik(g2))),
  software = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
)
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE, matrix = "rowmajor"),
           file.path(out, "update.json"))
